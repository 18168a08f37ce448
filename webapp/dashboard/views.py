"""Operator pages: the overview of the fleet, the map, a camera's page, and its zone editor."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from webapp.accounts.roles import Role, role_required
from webapp.accounts.scope import camera_or_404, site_or_404, visible_cameras, visible_sites
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site, Zone
from webapp.dashboard import analytics, overview, site_figures
from webapp.ingest.models import Frame, Result, ZoneCount
from webapp.ingest.privacy import BLURRED_MARK, image_shown

viewer_required = role_required(Role.VIEWER)
operator_required = role_required(Role.OPERATOR)

SCRUBBER_FRAMES = 120
SCRUBBER_DAYS = timedelta(days=1)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdecimal() else None


def _site_or_none(request) -> Site | None:
    """The site named by ?site= (404 for one that is not a site id, or not the user's), or None for every site."""
    if not request.GET.get("site"):
        return None
    site_id = _int_or_none(request.GET["site"])
    if site_id is None:
        raise Http404("site must be a site's id")
    return site_or_404(request.user, site_id)


def _page_size(value: str | None) -> int:
    size = _int_or_none(value)
    return min(max(size, 1), overview.MAX_PAGE_SIZE) if size else overview.PAGE_SIZE


@viewer_required
def fleet_overview(request):
    """Every camera, what needs attention first (`overview.ATTENTION`), grouped by site, filtered and a page at a
    time; the page polls this same URL for its cards alone, so filters, sorting and the page survive each refresh."""
    now = timezone.now()
    crowding, attention = request.GET.get("crowding", ""), request.GET.get("attention", "")
    sort = request.GET.get("sort", "attention")
    filters = overview.FleetFilters(
        site=_int_or_none(request.GET.get("site")),
        crowding=crowding if crowding in overview.CROWDING_ORDER else "",
        attention=attention if attention in overview.ATTENTION else "",
        search=request.GET.get("q", "").strip()[:100],
        sort=sort if sort in overview.SORTS else "attention",
    )
    cards, kinds = overview.fleet_cards(filters, now, visible_cameras(request.user))
    page = Paginator(cards, _page_size(request.GET.get("per_page"))).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    overview.attach_results(shown)
    overview.draw_sparklines(shown, now)
    unpaged = request.GET.copy()
    unpaged.pop("page", None)
    unpaged.pop("fragment", None)
    unfiltered = unpaged.copy()
    unfiltered.pop("attention", None)
    context = {
        "cards": shown,
        "groups": overview.site_groups(shown, cards),
        "page": page,
        "matching": len(cards),
        "kinds": [(kind, label, kinds[kind]) for kind, label in overview.ATTENTION.items() if kinds[kind]],
        "over_count": kinds["over"],
        "sites": visible_sites(request.user),
        "filters": filters,
        "site": filters.site,
        "crowding": filters.crowding,
        "sort": filters.sort,
        "crowding_levels": list(overview.CROWDING_ORDER),
        "attention_kinds": overview.ATTENTION,
        "sorts": overview.SORTS,
        "query_unpaged": unpaged.urlencode(),
        "query_unfiltered": unfiltered.urlencode(),
    }
    template = "dashboard/_cards.html" if request.GET.get("fragment") == "cards" else "dashboard/overview.html"
    return render(request, template, context)


@viewer_required
def site_map(request):
    return render(request, "dashboard/map.html", {"sites": visible_sites(request.user), "site": _site_or_none(request)})


@viewer_required
def map_data(request):
    """Cameras with a position, their current count and state: by latitude/longitude, or on a site's plan."""
    site = _site_or_none(request)
    on_plan = bool(site and site.plan)
    cameras = []
    seen = visible_cameras(request.user)
    registered = overview.with_latest(seen.filter(site=site) if site else seen)
    for card in overview.camera_cards(registered):
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
    site = site_or_404(request.user, pk)
    if not site.plan:
        raise Http404("this site has no plan")
    return FileResponse(site.plan.open("rb"))


@viewer_required
def site_analytics(request, pk: int):
    """A site's usual levels by weekday and hour, its cameras compared, busiest hours and the next hours' forecast:
    figures of the hours complete when the site's hour began, computed once an hour (`site_figures`)."""
    site = site_or_404(request.user, pk)
    choices = {str(choice): choice for choice in analytics.COMPARE_DAYS}
    compare_days = choices.get(request.GET.get("days", ""), 7)
    kept = site_figures.site_figures(site, list(site.cameras.all()), timezone.now(), compare_days)
    context = {
        "site": site,
        "figures": kept.figures,
        "as_of": analytics.wall(kept.as_of),
        "computed_at": analytics.wall(kept.computed_at.astimezone(site.zone)),
        "days": str(compare_days),
        "day_choices": list(choices),
        "usual_weeks": analytics.USUAL_WEEKS,
        "held_out_days": analytics.HELD_OUT_DAYS,
    }
    return render(request, "dashboard/site.html", context)


def _camera_card(camera: Camera) -> overview.CameraCard:
    """The camera's card: its state, latest result (with its frame and zones' counts) and frames waiting."""
    [card] = overview.camera_cards([camera])
    overview.attach_results([card], zone_counts=True)
    return card


@viewer_required
def camera_detail(request, pk: int):
    camera = camera_or_404(request.user, pk, overview.with_latest(Camera.objects.select_related("active_weights")))
    card = _camera_card(camera)
    context = {
        "camera": camera,
        "result": card.result,
        "state": card.state,
        "zones": camera.zones.all(),
        "waiting": card.waiting,
        "open_alerts": camera.alerts.filter(state=Alert.State.OPEN).select_related("camera__site", "acknowledged_by"),
    }
    return render(request, "dashboard/camera_detail.html", context)


@viewer_required
def camera_frames(request, pk: int):
    """The camera's recent counted frames (up to `SCRUBBER_FRAMES` of the `SCRUBBER_DAYS` before its latest), newest
    last, for the scrubber; and its open alerts, for the banner."""
    camera = camera_or_404(request.user, pk, overview.with_latest(Camera.objects.all()))
    card = _camera_card(camera)
    results = []
    if card.latest:
        # Both capture times bounded: frames and results are partitioned by it, and only those days are read.
        since = card.latest.captured_at - SCRUBBER_DAYS
        results = list(
            Result.objects.filter(frame__camera=camera, frame__captured_at__gte=since, captured_at__gte=since)
            .select_related("frame")
            .prefetch_related(Prefetch("zone_counts", queryset=ZoneCount.objects.filter(captured_at__gte=since)))
            .order_by("-captured_at")[:SCRUBBER_FRAMES]
        )
    frames = [
        {
            "id": result.frame.pk,
            "time": result.frame.captured_at.isoformat(),
            "count": result.count,
            "width": result.frame.width,
            "height": result.frame.height,
            "image": reverse("api-frame-image", args=[result.frame.pk]) if image_shown(result.frame, camera) else None,
            "density": reverse("api-frame-density-values", args=[result.frame.pk]),
            "zones": {zone.zone_name: zone.count for zone in result.zone_counts.all()},
            "origin": result.origin(),
        }
        for result in reversed(results)
    ]
    return JsonResponse({"camera": camera.pk, "state": card.state, "open_alerts": card.open_alerts, "frames": frames})


@viewer_required
def zone_list(request, pk: int):
    camera = camera_or_404(request.user, pk)
    return render(request, "dashboard/zones.html", _zone_editor_context(camera, None))


def _zone_editor_context(camera: Camera, zone: Zone | None, errors: dict | None = None, posted=None) -> dict:
    shown = camera.frames.filter(status=Frame.Status.DONE).exclude(image="")
    if camera.blur_heads:
        shown = shown.filter(image__contains=BLURRED_MARK)  # webapp.ingest.privacy: only blurred frames are shown
    latest = shown.order_by("-captured_at").first()
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
    camera = camera_or_404(request.user, pk)
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
    zone = get_object_or_404(Zone, pk=zone_id, camera=camera_or_404(request.user, pk))
    zone.delete()
    return redirect("dashboard:zones", pk=pk)
