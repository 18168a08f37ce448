"""What the overview and the map show of each camera: latest result, state, crowding, sparkline and open alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from webapp.alerts.models import Alert
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame, Result, newest_result_id

SPARKLINE_HOURS = 6
SPARKLINE_POINTS = 72  # one per 5 minutes over the six hours
SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 120, 28
CROWDING_ORDER = {"over": 0, "high": 1, "normal": 2, "unknown": 3}
SORTS = ("name", "crowding", "count")


@dataclass
class CameraCard:
    camera: Camera
    result: Result | None
    state: str
    crowding: str
    open_alerts: int
    sparkline: str  # SVG polyline points, empty when there is nothing to draw

    @property
    def count(self) -> float | None:
        return self.result.count if self.result else None

    @property
    def load(self) -> float:
        """The count as a share of the threshold, for sorting by crowding; -1 when unknown."""
        if self.count is None:
            return -1.0
        return self.count / self.camera.alert_threshold if self.camera.alert_threshold else self.count / 1e6


def sparklines(camera_ids: list[int], now: datetime) -> dict[int, str]:
    """The last hours of each camera as polyline points (means of 5-minute slots), scaled to the sparkline box."""
    start = now - timedelta(hours=SPARKLINE_HOURS)
    slot = timedelta(hours=SPARKLINE_HOURS) / SPARKLINE_POINTS
    slots: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows = Result.objects.filter(
        frame__camera_id__in=camera_ids, frame__captured_at__gte=start, frame__captured_at__lte=now
    ).values_list("frame__camera_id", "frame__captured_at", "count")
    for camera_id, captured_at, count in rows:
        slots[camera_id][min(int((captured_at - start) / slot), SPARKLINE_POINTS - 1)].append(count)
    lines = {}
    for camera_id, by_slot in slots.items():
        means = {index: sum(values) / len(values) for index, values in by_slot.items()}
        top = max(means.values()) or 1.0
        lines[camera_id] = " ".join(
            f"{index * SPARKLINE_WIDTH / (SPARKLINE_POINTS - 1):.1f},"
            f"{SPARKLINE_HEIGHT - 2 - mean / top * (SPARKLINE_HEIGHT - 4):.1f}"
            for index, mean in sorted(means.items())
        )
    return lines


def with_latest(cameras: QuerySet[Camera]) -> QuerySet[Camera]:
    """`cameras` annotated with what their state and latest count need, in a fixed number of queries however many
    cameras there are (the pages poll them every few seconds): `latest_result(s)` then reads the results."""
    last_received = Frame.objects.filter(camera=OuterRef("pk")).order_by("-received_at")
    open_alerts = Alert.objects.filter(camera=OuterRef("pk"), state=Alert.State.OPEN).values("camera")
    return cameras.select_related("site").annotate(
        last_received=Subquery(last_received.values("received_at")[:1]),
        last_status=Subquery(last_received.values("status")[:1]),
        latest_result_id=newest_result_id(),
        open_alert_count=Coalesce(Subquery(open_alerts.annotate(n=Count("pk")).values("n")), 0),
    )


def latest_results(cameras: list[Camera]) -> dict[int, Result]:
    """Each camera's (annotated by `with_latest`) newest result, with its frame, by camera id."""
    results = Result.objects.select_related("frame").in_bulk([camera.latest_result_id for camera in cameras])
    return {camera.pk: results[camera.latest_result_id] for camera in cameras if camera.latest_result_id in results}


def state_of(camera: Camera, result: Result | None, now: datetime) -> str:
    """The state of a camera annotated by `with_latest`, whose newest result is `result`."""
    return camera.state_given(
        camera.last_received, camera.last_status, result.frame.captured_at if result else None, now
    )


def camera_cards(site: int | None = None, crowding: str = "", sort: str = "name") -> list[CameraCard]:
    now = timezone.now()
    cameras = with_latest(Camera.objects.all())
    if site:
        cameras = cameras.filter(site_id=site)
    cameras = list(cameras)
    results = latest_results(cameras)
    lines = sparklines([camera.pk for camera in cameras], now)
    cards = []
    for camera in cameras:
        result = results.get(camera.pk)
        cards.append(
            CameraCard(
                camera=camera,
                result=result,
                state=state_of(camera, result, now),
                crowding=camera.crowding(result.count if result else None),
                open_alerts=camera.open_alert_count,
                sparkline=lines.get(camera.pk, ""),
            )
        )
    if crowding:
        cards = [card for card in cards if card.crowding == crowding]
    if sort == "crowding":
        cards.sort(key=lambda card: (CROWDING_ORDER[card.crowding], -card.load))
    elif sort == "count":
        cards.sort(key=lambda card: -(card.count if card.count is not None else -1))
    return cards
