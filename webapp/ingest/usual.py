"""A camera's usual level: the median of the same local weekday and hour over the weeks before, from its hourly means
on its site's clock, as the reports find unusual values (`llm_reports.facts`). The unusual-level alerts and the site
page's forecast both read it from here."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour

from webapp.cameras.models import Camera
from webapp.ingest.models import QuarterHourCount, Result
from webapp.ingest.series import whole_quarter_hours

USUAL_WEEKS = 4
HOUR = timedelta(hours=1)


def hourly_means(cameras: Iterable[Camera], start: datetime, end: datetime, zone: ZoneInfo) -> dict[int, dict]:
    """Camera id -> {local hour start: mean count} over [start, end), hours with no counted frame left out: from the
    quarter-hour counts of the whole quarter hours, and the frames of the edges shorter than a quarter hour, so the
    cost is the hours', not the frames'."""
    tallies: dict[int, dict[datetime, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    ids = [camera.pk for camera in cameras]
    first, last = whole_quarter_hours(start, end)
    quarters = (
        QuarterHourCount.objects.filter(camera_id__in=ids, zone_name="", start__gte=first, start__lt=last)
        .annotate(hour=TruncHour("start", tzinfo=zone))
        .values_list("camera_id", "hour")
        .annotate(frames=Sum("frames"), total=Sum("total"))
        .order_by()
    )
    # Both capture times bounded, the frames' and the results': both tables are partitioned by it.
    head = Q(captured_at__gte=start, captured_at__lt=first, frame__captured_at__gte=start, frame__captured_at__lt=first)
    tail = Q(captured_at__gte=last, captured_at__lt=end, frame__captured_at__gte=last, frame__captured_at__lt=end)
    edges = (
        Result.objects.filter(frame__camera_id__in=ids)
        .filter(head | tail)
        .annotate(hour=TruncHour("captured_at", tzinfo=zone))
        .values_list("frame__camera_id", "hour")
        .annotate(frames=Count("pk"), total=Sum("count"))
        .order_by()
    )
    for rows in (quarters, edges if first > start or last < end else []):
        for camera_id, hour, count, total in rows:
            tally = tallies[camera_id][hour.astimezone(zone)]
            tally[0] += count
            tally[1] += total
    return {
        camera_id: {hour: total / n for hour, (n, total) in sorted(hours.items())}
        for camera_id, hours in tallies.items()
    }


def usual_level(means: dict[datetime, float], hour: datetime) -> float | None:
    """The median of the same local weekday and hour over the `USUAL_WEEKS` weeks before `hour` (wall-clock weeks,
    across a change of clocks too); None without two of them."""
    earlier = [means.get(hour - timedelta(weeks=weeks)) for weeks in range(1, USUAL_WEEKS + 1)]
    earlier = [mean for mean in earlier if mean is not None]
    return statistics.median(earlier) if len(earlier) >= 2 else None


def same_hours_means(camera: Camera, hour: datetime) -> dict[datetime, float]:
    """The camera's means of the local `hour` and of the same hour in each of the `USUAL_WEEKS` weeks before (those
    counted): what `usual_level` of `hour` needs, reading only those five hours' rows."""
    means: dict[datetime, float] = {}
    for weeks in range(USUAL_WEEKS + 1):
        start = hour - timedelta(weeks=weeks)
        means |= hourly_means([camera], start, start + HOUR, camera.zone).get(camera.pk, {})
    return means
