"""The read API integrations start from: the sites, and the cameras with their zones, state and latest count.
Read by signed-in viewers and by API keys, a page at a time (webapp.pagination)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from webapp.accounts.permissions import IsReader
from webapp.accounts.scope import visible_cameras, visible_sites
from webapp.cameras.models import Camera, Site
from webapp.dashboard.overview import attach_results, camera_cards, with_latest
from webapp.ingest.models import Result
from webapp.pagination import ListPagination


class SiteRow(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    time_zone = serializers.CharField(help_text="IANA name: the site's pages, alerts, series and CSV use its clock")
    cameras = serializers.ListField(child=serializers.IntegerField(), help_text="their ids")


class ZoneRow(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    polygon = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()), help_text="frame px")
    alert_threshold = serializers.FloatField(allow_null=True)
    density_threshold = serializers.FloatField(allow_null=True, help_text="people per m²")
    area_m2 = serializers.FloatField(allow_null=True)


class LatestCount(serializers.Serializer):
    frame = serializers.IntegerField()
    captured_at = serializers.DateTimeField()
    count = serializers.FloatField()
    zones = serializers.DictField(child=serializers.FloatField(), help_text="zone name -> people")


class CameraRow(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    site = serializers.IntegerField(allow_null=True)
    place = serializers.CharField()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    counting_model = serializers.CharField()
    alert_threshold = serializers.FloatField(allow_null=True)
    state = serializers.ChoiceField(choices=["live", "behind", "stale", "failing", "new"])
    open_alerts = serializers.IntegerField()
    zones = ZoneRow(many=True)
    latest = LatestCount(allow_null=True, help_text="the newest counted frame; null before the first")


def _latest(result: Result | None) -> dict | None:
    if result is None:
        return None
    zones = {row.zone_name: row.count for row in result.zone_counts.all()}
    return {"frame": result.frame_id, "captured_at": result.captured_at, "count": result.count, "zones": zones}


class SiteListView(APIView):
    permission_classes = [IsReader]
    pagination_class = ListPagination  # read by drf-spectacular for the schema

    @extend_schema(responses=SiteRow(many=True))
    def get(self, request):
        sites = visible_sites(request.user, Site.objects.prefetch_related("cameras"))

        def rows(page: list[Site]) -> list[dict]:
            return [
                {"id": s.pk, "name": s.name, "time_zone": s.time_zone, "cameras": sorted(c.pk for c in s.cameras.all())}
                for s in page
            ]

        return ListPagination().page(sites, request, self, rows)


class CameraListView(APIView):
    permission_classes = [IsReader]
    pagination_class = ListPagination

    @extend_schema(
        parameters=[OpenApiParameter("site", OpenApiTypes.INT, description="only this site's cameras")],
        responses=CameraRow(many=True),
    )
    def get(self, request):
        cameras = with_latest(visible_cameras(request.user, Camera.objects.prefetch_related("zones")))
        site = request.query_params.get("site")
        if site is not None:
            if not site.isdecimal():
                raise serializers.ValidationError({"site": ["a site id"]})
            cameras = cameras.filter(site_id=int(site))

        def rows(page: list[Camera]) -> list[dict]:
            cards = {card.camera.pk: card for card in camera_cards(page)}
            attach_results(list(cards.values()), zone_counts=True)
            return [
                {
                    "id": camera.pk,
                    "name": camera.name,
                    "site": camera.site_id,
                    "place": camera.place,
                    "latitude": camera.latitude,
                    "longitude": camera.longitude,
                    "counting_model": camera.counting_model,
                    "alert_threshold": camera.alert_threshold,
                    "state": cards[camera.pk].state,
                    "open_alerts": cards[camera.pk].open_alerts,
                    "zones": [
                        {
                            "id": zone.pk,
                            "name": zone.name,
                            "polygon": zone.polygon,
                            "alert_threshold": zone.alert_threshold,
                            "density_threshold": zone.density_threshold,
                            "area_m2": zone.area_m2,
                        }
                        for zone in camera.zones.all()
                    ],
                    "latest": _latest(cards[camera.pk].result),
                }
                for camera in page
            ]

        return ListPagination().page(cameras, request, self, rows)
