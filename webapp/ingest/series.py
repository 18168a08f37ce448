"""Count time series of a camera: raw points, or buckets of 1m, 15m, 1h or 1d with mean and peak.

Buckets of 15 minutes and longer are cut from the frames still kept and from the quarter-hour counts that retention
leaves in place of older ones (`webapp.ingest.retention`); raw points and minutes exist only while the frames do."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.utils import timezone

from webapp.ingest.models import QuarterHourCount, Result, ZoneCount

QUARTER_HOUR = timedelta(minutes=15)
BUCKETS = {"1m": timedelta(minutes=1), "15m": QUARTER_HOUR, "1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_RAW_POINTS = 20_000


class SeriesRefused(ValueError):
    """A series that cannot be given as asked (too many points, or frames no longer kept); the message says why."""


@dataclass
class Tally:
    """Frames, their summed count and their peak: what buckets of any width are built from."""

    frames: int = 0
    total: float = 0.0
    peak: float = float("-inf")

    def add(self, frames: int, total: float, peak: float) -> None:
        self.frames += frames
        self.total += total
        self.peak = max(self.peak, peak)

    @property
    def mean(self) -> float:
        return self.total / self.frames


@dataclass(frozen=True)
class Sample:
    time: datetime
    frame: int
    count: float
    zones: dict[str, float]


def samples(camera_id: int, start: datetime, end: datetime, limit: int | None = None) -> list[Sample]:
    """The counted frames of a camera captured in [start, end), oldest first, with their zone counts."""
    rows = list(
        Result.objects.filter(frame__camera_id=camera_id, frame__captured_at__gte=start, frame__captured_at__lt=end)
        .order_by("frame__captured_at")
        .values_list("pk", "frame_id", "frame__captured_at", "count")[: limit + 1 if limit else None]
    )
    if limit and len(rows) > limit:
        raise SeriesRefused(f"more than {limit:,} frames in this range; ask for a bucket (1m, 15m, 1h, 1d)")
    zones: dict[int, dict[str, float]] = defaultdict(dict)
    for result_id, zone_name, count in ZoneCount.objects.filter(result_id__in=[row[0] for row in rows]).values_list(
        "result_id", "zone_name", "count"
    ):
        zones[result_id][zone_name] = count
    return [Sample(captured_at, frame_id, count, zones[pk]) for pk, frame_id, captured_at, count in rows]


def bucket_start(moment: datetime, width: timedelta, zone: tzinfo | None = None) -> datetime:
    """Buckets of a day or an hour start on the hour or at midnight of `zone` (default: the server's; Kolkata's hours
    begin at half past UTC's); shorter ones on whole minutes or quarter hours, alike in every zone."""
    if width in (BUCKETS["1d"], BUCKETS["1h"]):
        local = timezone.localtime(moment, zone).replace(minute=0, second=0, microsecond=0)
        return local.replace(hour=0) if width == BUCKETS["1d"] else local
    seconds = width.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, tz=moment.tzinfo)


def refuse_where_aggregated(camera_id: int, start: datetime, end: datetime, width: timedelta | None) -> None:
    """Refuse raw points (`width` None) or buckets shorter than a quarter hour over a range whose frames retention
    has replaced by quarter-hour counts."""
    if width is not None and width >= QUARTER_HOUR:
        return
    aggregated = QuarterHourCount.objects.filter(camera_id=camera_id, start__gte=start - QUARTER_HOUR, start__lt=end)
    newest = aggregated.order_by("-start").values_list("start", flat=True).first()
    if newest is not None:
        raise SeriesRefused(
            f"frames captured before {(newest + QUARTER_HOUR).isoformat()} are kept only as quarter-hour counts; "
            "ask for a bucket of 15m, 1h or 1d"
        )


def bucketed(camera_id: int, start: datetime, end: datetime, width: timedelta, zone: tzinfo) -> list[dict]:
    """Buckets of `width` over [start, end), oldest first, from the kept frames and the quarter-hour counts; days
    from midnight in `zone`, every start in `zone` with its offset."""
    refuse_where_aggregated(camera_id, start, end, width)
    cameras: dict[datetime, Tally] = defaultdict(Tally)
    zones: dict[datetime, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    for point in samples(camera_id, start, end):
        bucket = bucket_start(point.time, width, zone)
        cameras[bucket].add(1, point.count, point.count)
        for name, count in point.zones.items():
            zones[bucket][name].add(1, count, count)
    aggregated = QuarterHourCount.objects.filter(camera_id=camera_id, start__gte=start, start__lt=end)
    for row in aggregated.values_list("start", "zone_name", "frames", "total", "peak"):
        quarter, zone_name, *tally = row
        bucket = bucket_start(quarter, width, zone)
        (zones[bucket][zone_name] if zone_name else cameras[bucket]).add(*tally)
    return [
        {
            "start": bucket.astimezone(zone).isoformat(),
            "frames": tally.frames,
            "mean": tally.mean,
            "peak": tally.peak,
            "zones": {name: {"mean": each.mean, "peak": each.peak} for name, each in sorted(zones[bucket].items())},
        }
        for bucket, tally in sorted(cameras.items())
    ]


def raw(points: list[Sample], zone: tzinfo) -> list[dict]:
    """Each frame's point, its time in `zone` with the offset."""
    return [
        {
            "time": point.time.astimezone(zone).isoformat(),
            "frame": point.frame,
            "count": point.count,
            "zones": point.zones,
        }
        for point in points
    ]
