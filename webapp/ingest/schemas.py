"""The shapes of the frame and count-series answers, for the OpenAPI schema (the views build the JSON themselves)."""

from __future__ import annotations

from rest_framework import serializers

from webapp.ingest.models import Frame


class ZoneCountRow(serializers.Serializer):
    zone = serializers.IntegerField(allow_null=True, help_text="null once the zone is deleted")
    name = serializers.CharField()
    count = serializers.FloatField()


class ModelRow(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField(help_text="weights file and digest")
    inference_ms = serializers.FloatField()


class FrameLinks(serializers.Serializer):
    image = serializers.URLField(allow_null=True, help_text="null when not uploaded or no longer kept")
    density = serializers.URLField(allow_null=True, required=False, help_text=".npz of the density map")
    density_values = serializers.URLField(allow_null=True, required=False, help_text="the density map as JSON")
    heatmap = serializers.URLField(allow_null=True, required=False, help_text="PNG")


class FrameDetail(serializers.Serializer):
    id = serializers.IntegerField()
    camera = serializers.IntegerField()
    captured_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Frame.Status.values)
    error = serializers.CharField(allow_null=True)
    count = serializers.FloatField(allow_null=True, help_text="null until counted")
    zones = ZoneCountRow(many=True)
    model = ModelRow(allow_null=True)
    counted_on = serializers.ChoiceField(choices=["gateway", "server"])
    links = FrameLinks()


class CountPoint(serializers.Serializer):
    """A frame (`bucket` raw: time, frame, count; zones {name: count}) or a bucket (start, frames, mean, peak; zones
    {name: {mean, peak}}); times on the site's clock with its offset."""

    time = serializers.DateTimeField(required=False)
    frame = serializers.IntegerField(required=False)
    count = serializers.FloatField(required=False)
    start = serializers.DateTimeField(required=False)
    frames = serializers.IntegerField(required=False)
    mean = serializers.FloatField(required=False)
    peak = serializers.FloatField(required=False)
    zones = serializers.DictField(child=serializers.JSONField())


class CountSeries(serializers.Serializer):
    camera = serializers.IntegerField()
    time_zone = serializers.CharField(help_text="IANA name of the site's clock")
    to = serializers.DateTimeField()
    bucket = serializers.CharField()
    points = CountPoint(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField()  # a Python keyword: declared here
        return fields
