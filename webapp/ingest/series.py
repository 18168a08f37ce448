"""Count time series of a camera: raw points, or buckets of 1m, 15m, 1h or 1d with mean and peak.

Buckets of 15 minutes and longer are cut from the quarter-hour counts kept as frames are counted
(`webapp.ingest.rollups`), so a month's hourly series reads 3,000 rows, not 9,000 frames; raw points and minutes read
the frames, and exist only while retention keeps them (`webapp.ingest.retention`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from django.utils import timezone

from webapp.ingest.models import Frame, QuarterHourCount, Result, ZoneCount

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
    if start >= end:
        return []
    # Both capture times are filtered on: results and frames are partitioned by it, and only the range's days are read.
    rows = list(
        Result.objects.filter(
            frame__camera_id=camera_id,
            frame__captured_at__gte=start,
            frame__captured_at__lt=end,
            captured_at__gte=start,
            captured_at__lt=end,
        )
        .order_by("captured_at")
        .values_list("pk", "frame_id", "captured_at", "count")[: limit + 1 if limit else None]
    )
    if limit and len(rows) > limit:
        raise SeriesRefused(f"more than {limit:,} frames in this range; ask for a bucket (1m, 15m, 1h, 1d)")
    zones: dict[int, dict[str, float]] = defaultdict(dict)
    if rows:
        zone_rows = ZoneCount.objects.filter(
            result_id__in=[row[0] for row in rows], captured_at__gte=rows[0][2], captured_at__lte=rows[-1][2]
        ).values_list("result_id", "zone_name", "count")
        for result_id, zone_name, count in zone_rows:
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
    """Refuse raw points (`width` None) or buckets shorter than a quarter hour over a range where retention has deleted
    the frames and left only their quarter-hour counts: counted quarter hours before the camera's oldest kept frame."""
    if width is not None and width >= QUARTER_HOUR:
        return
    oldest_kept = (
        Frame.objects.filter(camera_id=camera_id).order_by("captured_at").values_list("captured_at", flat=True).first()
    )
    aggregated = QuarterHourCount.objects.filter(camera_id=camera_id, start__gte=start - QUARTER_HOUR, start__lt=end)
    if oldest_kept is not None:
        aggregated = aggregated.filter(start__lt=bucket_start(oldest_kept, QUARTER_HOUR))
    newest = aggregated.order_by("-start").values_list("start", flat=True).first()
    if newest is not None:
        raise SeriesRefused(
            f"frames captured before {(newest + QUARTER_HOUR).isoformat()} are kept only as quarter-hour counts; "
            "ask for a bucket of 15m, 1h or 1d"
        )


def whole_quarter_hours(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole quarter hours of [start, end) as [first, last); the edges outside it are shorter than a quarter
    hour each."""
    first = bucket_start(start, QUARTER_HOUR)
    first = first if first == start else first + QUARTER_HOUR
    return min(first, end), max(min(first, end), bucket_start(end, QUARTER_HOUR))


def bucketed(camera_id: int, start: datetime, end: datetime, width: timedelta, zone: tzinfo) -> list[dict]:
    """Buckets of `width` over [start, end), oldest first. Minutes come from the frames; buckets of a quarter hour or
    longer from the quarter-hour counts of the range's whole quarter hours and the frames of its edges (less than a
    quarter hour each), so they are exact and cost the same however long the history. Days from midnight in `zone`,
    every start in `zone` with its offset."""
    refuse_where_aggregated(camera_id, start, end, width)
    cameras: dict[datetime, Tally] = defaultdict(Tally)
    zones: dict[datetime, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    if width < QUARTER_HOUR:
        points = samples(camera_id, start, end)
    else:
        first, last = whole_quarter_hours(start, end)
        points = samples(camera_id, start, first) + samples(camera_id, last, end)
        quarters = QuarterHourCount.objects.filter(camera_id=camera_id, start__gte=first, start__lt=last)
        for quarter, zone_name, *tally in quarters.values_list("start", "zone_name", "frames", "total", "peak"):
            bucket = bucket_start(quarter, width, zone)
            (zones[bucket][zone_name] if zone_name else cameras[bucket]).add(*tally)
    for point in points:
        bucket = bucket_start(point.time, width, zone)
        cameras[bucket].add(1, point.count, point.count)
        for name, count in point.zones.items():
            zones[bucket][name].add(1, count, count)
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
