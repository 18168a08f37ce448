"""The `from`/`to` query parameters the API's lists share (counts, alerts, calibration jobs)."""

from rest_framework import serializers


class PeriodQuery(serializers.Serializer):
    """Optional `from` (inclusive) and `to` (exclusive) query parameters."""

    # `from` is a Python keyword, so the field is declared through the serializer's fields mapping below.
    to = serializers.DateTimeField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateTimeField(required=False)
        return fields
