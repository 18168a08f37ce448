"""The alert list page (filtered by state and camera) and acknowledging an alert; the API is in api.py."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from webapp.accounts.roles import Role, role_required
from webapp.accounts.scope import scoped, visible_cameras
from webapp.alerts.models import MAX_LISTED, STATES, Alert, filtered_alerts
from webapp.cameras.models import Camera


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
