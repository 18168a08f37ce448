"""Operator pages: the overview of every camera, the map, a camera's page, and its zone editor."""

from __future__ import annotations

import json
import math

from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.accounts.roles import Role, role_required
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site, Zone
from webapp.dashboard import analytics
from webapp.dashboard.overview import CROWDING_ORDER, SORTS, camera_cards
from webapp.ingest.models import Frame, Result

viewer_required = role_required(Role.VIEWER)
operator_required = role_required(Role.OPERATOR)

SCRUBBER_FRAMES = 120


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdecimal() else None


def _site_or_none(request) -> Site | None:
    """The site named by ?site= (404 for one that is not a site id), or None for every site."""
    if not request.GET.get("site"):
        return None
    site_id = _int_or_none(request.GET["site"])
    if site_id is None:
        raise Http404("site must be a site's id")
    return get_object_or_404(Site, pk=site_id)


@viewer_required
def overview(request):
    site = _int_or_none(request.GET.get("site"))
    crowding = request.GET.get("crowding", "")
    sort = request.GET.get("sort", "name")
    cards = camera_cards(site, crowding if crowding in CROWDING_ORDER else "", sort if sort in SORTS else "name")
    context = {
        "cards": cards,
        "over_count": sum(card.crowding == "over" for card in cards),
        "sites": Site.objects.all(),
        "site": site,
        "crowding": crowding,
        "sort": sort,
        "crowding_levels": list(CROWDING_ORDER),
        "sorts": SORTS,
    }
    # The page polls this same URL for its cards alone, so filters and sorting survive each refresh.
    template = "dashboard/_cards.html" if request.GET.get("fragment") == "cards" else "dashboard/overview.html"
    return render(request, template, context)


@viewer_required
def site_map(request):
    return render(request, "dashboard/map.html", {"sites": Site.objects.all(), "site": _site_or_none(request)})


@viewer_required
def map_data(request):
    """Cameras with a position, their current count and state: by latitude/longitude, or on a site's plan."""
    site = _site_or_none(request)
    on_plan = bool(site and site.plan)
    cameras = []
    for card in camera_cards(site.pk if site else None):
        camera = card.camera
        x, y = (camera.plan_x, camera.plan_y) if on_plan else (camera.longitude, camera.latitude)
        if x is None or y is None:
            continue
        cameras.append(
            {
                "id": camera.pk,
                "name": camera.name,
                "site": camera.site.name if camera.site else "",
                "x": x,
                "y": y,
                "count": card.count,
                "threshold": camera.alert_threshold,
                "state": card.state,
                "crowding": card.crowding,
                "open_alerts": card.open_alerts,
                "url": reverse("dashboard:camera", args=[camera.pk]),
            }
        )
    plan = None
    if on_plan:
        plan = {
            "url": reverse("dashboard:site-plan", args=[site.pk]),
            "width": site.plan.width,
            "height": site.plan.height,
        }
    return JsonResponse({"plan": plan, "cameras": cameras})


@viewer_required
def site_plan(request, pk: int):
    site = get_object_or_404(Site, pk=pk)
    if not site.plan:
        raise Http404("this site has no plan")
    return FileResponse(site.plan.open("rb"))


COMPARE_DAYS = {"1": 1, "7": 7, "28": 28}


@viewer_required
def site_analytics(request, pk: int):
    """A site's usual levels by weekday and hour, its cameras compared, busiest hours and the next hours' forecast."""
    site = get_object_or_404(Site, pk=pk)
    days = request.GET.get("days", "7")
    compare_days = COMPARE_DAYS.get(days, 7)
    figures = analytics.site_analytics(list(site.cameras.all()), site.zone, timezone.now(), compare_days)
    context = {
        "site": site,
        "figures": figures,
        "days": str(compare_days),
        "day_choices": list(COMPARE_DAYS),
        "usual_weeks": analytics.USUAL_WEEKS,
        "held_out_days": analytics.HELD_OUT_DAYS,
    }
    return render(request, "dashboard/site.html", context)


@viewer_required
def camera_detail(request, pk: int):
    camera = get_object_or_404(Camera.objects.select_related("site", "active_weights"), pk=pk)
    result = Result.objects.filter(frame__camera=camera).select_related("frame").order_by("-frame__captured_at").first()
    waiting = camera.frames.exclude(status__in=[Frame.Status.DONE, Frame.Status.FAILED]).count()
    context = {
        "camera": camera,
        "result": result,
        "state": camera.state(),
        "zones": camera.zones.all(),
        "waiting": waiting,
        "open_alerts": camera.alerts.filter(state=Alert.State.OPEN).select_related("camera__site", "acknowledged_by"),
    }
    return render(request, "dashboard/camera_detail.html", context)


@viewer_required
def camera_frames(request, pk: int):
    """The camera's recent counted frames, newest last, for the scrubber; and its open alerts, for the banner."""
    camera = get_object_or_404(Camera, pk=pk)
    results = list(
        Result.objects.filter(frame__camera=camera)
        .select_related("frame")
        .prefetch_related("zone_counts")
        .order_by("-frame__captured_at")[:SCRUBBER_FRAMES]
    )
    frames = [
        {
            "id": result.frame.pk,
            "time": result.frame.captured_at.isoformat(),
            "count": result.count,
            "width": result.frame.width,
            "height": result.frame.height,
            "image": reverse("api-frame-image", args=[result.frame.pk]) if result.frame.image else None,
            "density": reverse("api-frame-density-values", args=[result.frame.pk]),
            "zones": {zone.zone_name: zone.count for zone in result.zone_counts.all()},
            "origin": result.origin(),
        }
        for result in reversed(results)
    ]
    return JsonResponse(
        {
            "camera": camera.pk,
            "state": camera.state(),
            "open_alerts": camera.alerts.filter(state=Alert.State.OPEN).count(),
            "frames": frames,
        }
    )


@viewer_required
def zone_list(request, pk: int):
    camera = get_object_or_404(Camera, pk=pk)
    return render(request, "dashboard/zones.html", _zone_editor_context(camera, None))


def _zone_editor_context(camera: Camera, zone: Zone | None, errors: dict | None = None, posted=None) -> dict:
    latest = camera.frames.filter(status=Frame.Status.DONE).exclude(image="").order_by("-captured_at").first()
    any_frame = latest or camera.frames.order_by("-captured_at").first()
    values = posted or {}
    return {
        "camera": camera,
        "zones": camera.zones.all(),
        "zone": zone,
        "frame": latest,
        "frame_size": (any_frame.width, any_frame.height) if any_frame else (1024, 768),
        "errors": errors or {},
        "polygon_json": values.get("polygon") or json.dumps(zone.polygon if zone else []),
        "name": values.get("name", zone.name if zone else ""),
        "alert_threshold": values.get("alert_threshold", _blank(zone.alert_threshold if zone else None)),
        "area_m2": values.get("area_m2", _blank(zone.area_m2 if zone else None)),
        "density_threshold": values.get("density_threshold", _blank(zone.density_threshold if zone else None)),
    }


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _optional_float(text: str, field: str, errors: dict) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        errors[field] = ["Enter a number."]
        return None
    return value


@operator_required
def zone_edit(request, pk: int, zone_id: int | None = None):
    """Create (zone_id None) or change a zone from the polygon drawn in the browser."""
    camera = get_object_or_404(Camera, pk=pk)
    zone = get_object_or_404(Zone, pk=zone_id, camera=camera) if zone_id else None
    if request.method != "POST":
        return render(request, "dashboard/zones.html", _zone_editor_context(camera, zone))
    errors: dict[str, list[str]] = {}
    try:
        polygon = json.loads(request.POST.get("polygon", ""))
    except json.JSONDecodeError:
        polygon = None
        errors["polygon"] = ["Draw the zone: click at least three corners on the frame."]
    target = zone or Zone(camera=camera)
    target.name = request.POST.get("name", "").strip()
    target.polygon = polygon
    target.alert_threshold = _optional_float(request.POST.get("alert_threshold", ""), "alert_threshold", errors)
    target.area_m2 = _optional_float(request.POST.get("area_m2", ""), "area_m2", errors)
    target.density_threshold = _optional_float(request.POST.get("density_threshold", ""), "density_threshold", errors)
    if not errors:
        try:
            target.full_clean()
        except ValidationError as error:
            errors = error.message_dict
    if errors:
        context = _zone_editor_context(camera, zone, errors, request.POST)
        return render(request, "dashboard/zones.html", context, status=400)
    target.save()
    return redirect("dashboard:zones", pk=camera.pk)


@operator_required
@require_POST
def zone_delete(request, pk: int, zone_id: int):
    zone = get_object_or_404(Zone, pk=zone_id, camera_id=pk)
    zone.delete()
    return redirect("dashboard:zones", pk=pk)
