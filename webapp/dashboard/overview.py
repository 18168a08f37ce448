"""What the overview, the map, a camera's page and the camera API show of each camera: its latest count, state,
crowding, open alerts, frames waiting, what needs attention first, and for the cards of one page the latest frame and
a sparkline.

A fleet has a thousand cameras and months of frames. Everything about all of them comes from a fixed number of small
queries whose cost does not grow with the history: latest counts from `LatestCount`, open alerts and waiting or failed
frames counted in aggregate queries. What costs more per camera (the latest frame's row, the sparkline) is read only
for the cards of the page shown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Prefetch, QuerySet, prefetch_related_objects
from django.utils import timezone

from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site
from webapp.ingest.models import Frame, LatestCount, QuarterHourCount, Result, ZoneCount
from webapp.ingest.series import QUARTER_HOUR, bucket_start

SPARKLINE_HOURS = 6
SPARKLINE_POINTS = SPARKLINE_HOURS * 4 + 1  # the quarter hours from the one six hours ago to the one under way
SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 120, 28
CROWDING_ORDER = {"over": 0, "high": 1, "normal": 2, "unknown": 3}
# What needs attention first: crowding over its threshold, open alerts, frames failing, no frame lately, counting
# behind (a backlog), crowding near its threshold; then cameras that are fine, then those not yet sending.
ATTENTION = {
    "over": "over threshold",
    "alerts": "open alerts",
    "failing": "failing",
    "stale": "stale",
    "behind": "behind",
    "high": "near threshold",
    "live": "live",
    "new": "new",
}
ATTENTION_ORDER = {kind: rank for rank, kind in enumerate(ATTENTION)}
OK = ("live", "new")  # the kinds that need nothing
SORTS = ("attention", "name", "crowding", "count")
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
WAITING = (Frame.Status.QUEUED, Frame.Status.PROCESSING)


@dataclass
class CameraCard:
    camera: Camera
    latest: LatestCount | None
    state: str
    crowding: str
    open_alerts: int
    waiting: int  # frames queued or being counted
    oldest_waiting: datetime | None  # when the longest waiting of them was received
    now: datetime
    result: Result | None = field(default=None)  # the latest result with its frame: only on cards of a page shown
    sparkline: str = ""  # SVG polyline points, empty when there is nothing to draw (or not a page's card)

    @property
    def count(self) -> float | None:
        return self.latest.count if self.latest else None

    @property
    def load(self) -> float:
        """The count as a share of the threshold, for sorting by crowding; -1 when unknown."""
        if self.count is None:
            return -1.0
        return self.count / self.camera.alert_threshold if self.camera.alert_threshold else self.count / 1e6

    @property
    def backlogged(self) -> bool:
        """A frame has waited to be counted longer than the camera may go without a frame."""
        fresh = timedelta(minutes=self.camera.stale_after_minutes)
        return self.oldest_waiting is not None and self.now - self.oldest_waiting > fresh

    @property
    def attention(self) -> str:
        """The most pressing of `ATTENTION` that is true of the camera."""
        if self.crowding == "over":
            return "over"
        if self.open_alerts:
            return "alerts"
        if self.state in ("failing", "stale", "behind"):
            return self.state
        if self.backlogged:
            return "behind"
        if self.crowding == "high":
            return "high"
        return self.state

    @property
    def attention_label(self) -> str:
        return ATTENTION[self.attention]


def with_latest(cameras: QuerySet[Camera]) -> QuerySet[Camera]:
    """`cameras` with their site and latest count joined in, as `camera_cards` reads them."""
    return cameras.select_related("site", "latest_count")


def _latest_count(camera: Camera) -> LatestCount | None:
    try:
        return camera.latest_count
    except LatestCount.DoesNotExist:
        return None


def camera_cards(cameras: Iterable[Camera], now: datetime | None = None) -> list[CameraCard]:
    """A card for each of `cameras` (from `with_latest`), in their order, in five queries however many there are.

    The state is `Camera.state_given` of the newest received frame among the latest counted one, the waiting ones
    and the failed ones: only a frame counted since that is older than the latest counted one (a back-fill) escapes
    it, and that changes no state while the camera's live frames arrive."""
    now = now or timezone.now()
    cameras = list(cameras)
    ids = [camera.pk for camera in cameras]
    latest = {camera.pk: _latest_count(camera) for camera in cameras}
    alerts = dict(
        Alert.objects.filter(camera_id__in=ids, state=Alert.State.OPEN)
        .values_list("camera_id")
        .annotate(Count("pk"))
        .order_by()
    )
    waiting = {
        camera_id: (n, oldest, newest)
        for camera_id, n, oldest, newest in Frame.objects.filter(camera_id__in=ids, status__in=WAITING)
        .values_list("camera_id")
        .annotate(Count("pk"), Min("received_at"), Max("received_at"))
        .order_by()
    }
    failed = dict(
        Frame.objects.filter(camera_id__in=ids, status=Frame.Status.FAILED)
        .values_list("camera_id")
        .annotate(Max("received_at"))
        .order_by()
    )
    counted = [each for each in latest.values() if each is not None]
    received = {}
    if counted:
        received = dict(
            Frame.objects.filter(
                pk__in=[each.frame_id for each in counted],
                captured_at__gte=min(each.captured_at for each in counted),
                captured_at__lte=max(each.captured_at for each in counted),
            ).values_list("camera_id", "received_at")
        )
    cards = []
    for camera in cameras:
        n, oldest, newest_waiting = waiting.get(camera.pk, (0, None, None))
        candidates = [
            (when, status)
            for when, status in [
                (received.get(camera.pk), Frame.Status.DONE),
                (newest_waiting, Frame.Status.QUEUED),
                (failed.get(camera.pk), Frame.Status.FAILED),
            ]
            if when is not None
        ]
        last_received, last_status = max(candidates, key=lambda pair: pair[0]) if candidates else (None, None)
        newest_counted = latest[camera.pk].captured_at if latest[camera.pk] else None
        cards.append(
            CameraCard(
                camera=camera,
                latest=latest[camera.pk],
                state=camera.state_given(last_received, last_status, newest_counted, now),
                crowding=camera.crowding(latest[camera.pk].count if latest[camera.pk] else None),
                open_alerts=alerts.get(camera.pk, 0),
                waiting=n,
                oldest_waiting=oldest,
                now=now,
            )
        )
    return cards


def attach_results(cards: list[CameraCard], zone_counts: bool = False) -> None:
    """Read the latest result of each card's camera with its frame (and with `zone_counts`, its zones' counts): for
    the cards of one page, in two or three queries, each bounded by the results' capture times."""
    counted = [card.latest for card in cards if card.latest]
    if not counted:
        return
    captured = {"captured_at__gte": min(each.captured_at for each in counted)}
    captured["captured_at__lte"] = max(each.captured_at for each in counted)
    results = Result.objects.filter(pk__in=[each.result_id for each in counted], **captured).in_bulk()
    frames = Frame.objects.filter(pk__in=[each.frame_id for each in counted], **captured).in_bulk()
    for result in results.values():
        result.frame = frames[result.frame_id]
    if zone_counts:
        prefetch_related_objects(
            list(results.values()), Prefetch("zone_counts", queryset=ZoneCount.objects.filter(**captured))
        )
    for card in cards:
        if card.latest and card.latest.result_id in results:
            card.result = results[card.latest.result_id]


def draw_sparklines(cards: list[CameraCard], now: datetime) -> None:
    """The last hours of each card's camera as polyline points (quarter hours' means), scaled to the sparkline box."""
    first = bucket_start(now - timedelta(hours=SPARKLINE_HOURS), QUARTER_HOUR)
    means: dict[int, dict[int, float]] = defaultdict(dict)
    quarters = QuarterHourCount.objects.filter(
        camera_id__in=[card.camera.pk for card in cards], zone_name="", start__gte=first, start__lte=now
    )
    for camera_id, start, frames, total in quarters.values_list("camera_id", "start", "frames", "total"):
        means[camera_id][min(int((start - first) / QUARTER_HOUR), SPARKLINE_POINTS - 1)] = total / frames
    for card in cards:
        by_slot = means.get(card.camera.pk)
        if not by_slot:
            continue
        top = max(by_slot.values()) or 1.0
        card.sparkline = " ".join(
            f"{index * SPARKLINE_WIDTH / (SPARKLINE_POINTS - 1):.1f},"
            f"{SPARKLINE_HEIGHT - 2 - mean / top * (SPARKLINE_HEIGHT - 4):.1f}"
            for index, mean in sorted(by_slot.items())
        )


def sort_cards(cards: list[CameraCard], sort: str) -> list[CameraCard]:
    """`cards` in the order of `sort` (one of `SORTS`), then grouped by site: each site where its first card falls,
    with its cards in that order; the names break ties."""
    by_name = sorted(cards, key=lambda card: (card.camera.site.name if card.camera.site else "", card.camera.name))
    if sort == "attention":
        ordered = sorted(by_name, key=lambda card: (ATTENTION_ORDER[card.attention], -card.load))
    elif sort == "crowding":
        ordered = sorted(by_name, key=lambda card: (CROWDING_ORDER[card.crowding], -card.load))
    elif sort == "count":
        ordered = sorted(by_name, key=lambda card: -(card.count if card.count is not None else -1))
    else:
        ordered = by_name
    sites: dict[int | None, list[CameraCard]] = {}
    for card in ordered:
        sites.setdefault(card.camera.site_id, []).append(card)
    return [card for site_cards in sites.values() for card in site_cards]


@dataclass(frozen=True)
class FleetFilters:
    """What the overview lists: a site, a crowding level, an attention kind, a search in names; sorted by `sort`."""

    site: int | None = None
    crowding: str = ""
    attention: str = ""
    search: str = ""
    sort: str = "attention"

    @property
    def any(self) -> bool:
        return bool(self.site or self.crowding or self.attention or self.search)


@dataclass
class SiteGroup:
    site: Site | None
    cards: list[CameraCard]
    attention: list[tuple[str, str, int]]  # (kind, label, cameras) of the site's matching cameras that need it
    cameras: int


def fleet_cards(filters: FleetFilters, now: datetime, cameras: QuerySet[Camera]) -> tuple[list[CameraCard], Counter]:
    """The `cameras` matching `filters`, sorted and grouped by site (`sort_cards`), and how many of those matching
    all filters but the attention kind fall in each kind (for the overview's counts)."""
    cameras = with_latest(cameras)
    if filters.site:
        cameras = cameras.filter(site_id=filters.site)
    if filters.search:
        cameras = cameras.filter(name__icontains=filters.search)
    cards = camera_cards(cameras, now)
    if filters.crowding:
        cards = [card for card in cards if card.crowding == filters.crowding]
    kinds = Counter(card.attention for card in cards)
    if filters.attention:
        cards = [card for card in cards if card.attention == filters.attention]
    return sort_cards(cards, filters.sort), kinds


def site_groups(page_cards: list[CameraCard], all_cards: list[CameraCard]) -> list[SiteGroup]:
    """The page's cards by site, in page order, each site with the attention counts of all its matching cameras."""
    per_site: dict[int | None, Counter] = defaultdict(Counter)
    for card in all_cards:
        per_site[card.camera.site_id][card.attention] += 1
    groups: list[SiteGroup] = []
    for card in page_cards:
        if not groups or groups[-1].cards[0].camera.site_id != card.camera.site_id:
            counts = per_site[card.camera.site_id]
            needing = [
                (kind, label, counts[kind]) for kind, label in ATTENTION.items() if counts[kind] and kind not in OK
            ]
            groups.append(SiteGroup(card.camera.site, [], needing, sum(counts.values())))
        groups[-1].cards.append(card)
    return groups
