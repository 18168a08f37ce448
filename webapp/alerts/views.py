"""The alert list (filtered by state and camera), acknowledging an alert, and the alerts through the API."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from webapp.accounts.auth import ApiKeyAuthentication
from webapp.accounts.roles import Role, has_role, role_required
from webapp.accounts.scope import scoped, visible_cameras
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera
from webapp.ingest.api import PeriodQuery
from webapp.pagination import ListPagination

STATES = ("open", "acknowledged", "all")
MAX_LISTED = 500


def filtered_alerts(principal, state: str, camera: int | None):
    """The alerts of the cameras `principal` sees, in `state`, of one camera or all."""
    alerts = scoped(Alert.objects.select_related("camera__site", "acknowledged_by"), principal)
    if state in (Alert.State.OPEN, Alert.State.ACKNOWLEDGED):
        alerts = alerts.filter(state=state)
    if camera:
        alerts = alerts.filter(camera_id=camera)
    return alerts


@role_required(Role.VIEWER)
def alert_list(request):
    state = request.GET.get("state", "open")
    state = state if state in STATES else "open"
    camera = request.GET.get("camera", "")
    camera_id = int(camera) if camera.isascii() and camera.isdecimal() else None
    context = {
        "alerts": filtered_alerts(request.user, state, camera_id)[:MAX_LISTED],
        "state": state,
        "states": STATES,
        "camera": camera_id,
        "cameras": visible_cameras(request.user, Camera.objects.select_related("site")),
        "compact": request.GET.get("compact") == "1",
        "back": _page_url(request),
    }
    template = "alerts/_rows.html" if request.GET.get("fragment") == "rows" else "alerts/alert_list.html"
    return render(request, template, context)


def _page_url(request) -> str:
    """Where an acknowledgement returns to: the page showing the list (`next`), not the fragment it polls."""
    if request.GET.get("next", "").startswith("/"):
        return request.GET["next"]
    params = request.GET.copy()
    for name in ("fragment", "compact", "next"):
        params.pop(name, None)
    return f"{request.path}?{params.urlencode()}" if params else request.path


@role_required(Role.OPERATOR)
@require_POST
def acknowledge(request, pk: int):
    alert = get_object_or_404(scoped(Alert.objects.all(), request.user), pk=pk)
    alert.acknowledge(request.user)
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("alerts:list")


class IsViewer(BasePermission):
    message = "signed-in users with a role (viewer or above) read alerts"

    def has_permission(self, request, view) -> bool:
        return has_role(request.user, Role.VIEWER)


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
    permission_classes = [IsViewer]
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
