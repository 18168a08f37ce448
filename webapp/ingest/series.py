"""Count time series of a camera: raw points, or buckets of 1m, 15m, 1h or 1d with mean and peak."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from webapp.ingest.models import Result, ZoneCount

BUCKETS = {"1m": timedelta(minutes=1), "15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
MAX_RAW_POINTS = 20_000


class SeriesTooLong(ValueError):
    pass


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
        raise SeriesTooLong(f"more than {limit:,} frames in this range; ask for a bucket (1m, 15m, 1h, 1d)")
    zones: dict[int, dict[str, float]] = defaultdict(dict)
    for result_id, zone_name, count in ZoneCount.objects.filter(result_id__in=[row[0] for row in rows]).values_list(
        "result_id", "zone_name", "count"
    ):
        zones[result_id][zone_name] = count
    return [Sample(captured_at, frame_id, count, zones[pk]) for pk, frame_id, captured_at, count in rows]


def bucket_start(moment: datetime, width: timedelta) -> datetime:
    """Buckets of a day start at local midnight; shorter ones on whole minutes or hours of UTC."""
    if width == BUCKETS["1d"]:
        local = timezone.localtime(moment)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    seconds = width.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // seconds * seconds, tz=moment.tzinfo)


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": sum(values) / len(values), "peak": max(values)}


def bucketed(points: list[Sample], width: timedelta) -> list[dict]:
    groups: dict[datetime, list[Sample]] = defaultdict(list)
    for point in points:
        groups[bucket_start(point.time, width)].append(point)
    series = []
    for start, members in sorted(groups.items()):
        zone_values: dict[str, list[float]] = defaultdict(list)
        for member in members:
            for name, count in member.zones.items():
                zone_values[name].append(count)
        series.append(
            {
                "start": start.isoformat(),
                "frames": len(members),
                **_summary([member.count for member in members]),
                "zones": {name: _summary(values) for name, values in sorted(zone_values.items())},
            }
        )
    return series


def raw(points: list[Sample]) -> list[dict]:
    return [
        {"time": point.time.isoformat(), "frame": point.frame, "count": point.count, "zones": point.zones}
        for point in points
    ]
