"""The alerts through the API (`GET /api/v1/alerts/`): those of the sites the caller sees, a page at a time."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from webapp.accounts.auth import ApiKeyAuthentication
from webapp.accounts.permissions import IsReader
from webapp.alerts.models import MAX_LISTED, STATES, Alert, filtered_alerts
from webapp.pagination import ListPagination
from webapp.period_query import PeriodQuery


class AlertQuery(PeriodQuery):
    camera = serializers.IntegerField(required=False, min_value=1)
    state = serializers.ChoiceField(choices=STATES, required=False)


class AlertRow(serializers.Serializer):
    id = serializers.IntegerField()
    camera = serializers.IntegerField()
    zone = serializers.IntegerField(allow_null=True)
    zone_name = serializers.CharField(allow_null=True)
    kind = serializers.ChoiceField(choices=Alert.Kind.values)
    threshold = serializers.FloatField()
    value = serializers.FloatField(help_text="at the frame that raised it")
    peak = serializers.FloatField()
    frame = serializers.IntegerField(allow_null=True, help_text="the frame that raised it; null once retention took it")
    raised_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=Alert.State.values)
    acknowledged_by = serializers.CharField(allow_null=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)


def alert_body(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "camera": alert.camera_id,
        "zone": alert.zone_id,
        "zone_name": alert.zone_name or None,
        "kind": alert.kind,
        "threshold": alert.threshold,
        "value": alert.value,
        "peak": alert.peak,
        "frame": alert.frame_id,
        "raised_at": alert.raised_at,
        "ended_at": alert.ended_at,
        "state": alert.state,
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
        "acknowledged_at": alert.acknowledged_at,
    }


class AlertPagination(ListPagination):
    """Newest first, as many as the camera page's chart takes at once (it draws a range's alerts in one request)."""

    page_size = MAX_LISTED
    ordering = ("-raised_at", "-id")
    results_key = "alerts"


class AlertListView(APIView):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [IsReader]
    pagination_class = AlertPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("camera", OpenApiTypes.INT),
            OpenApiParameter("state", OpenApiTypes.STR, enum=list(STATES), description="default all"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="raised at or after"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="raised before"),
        ],
        responses=AlertRow(many=True),
    )
    def get(self, request):
        query = AlertQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        alerts = filtered_alerts(request.user, params.get("state", "all"), params.get("camera"))
        if "from" in params:
            alerts = alerts.filter(raised_at__gte=params["from"])
        if "to" in params:
            alerts = alerts.filter(raised_at__lt=params["to"])
        return AlertPagination().page(alerts, request, self, lambda page: [alert_body(alert) for alert in page])
