"""The report input, built from the database: hourly series per camera and zone over the period and the weeks
before it (which give each camera its usual level for an hour of a weekday), read from the quarter-hour counts kept
as frames are counted (`webapp.ingest.rollups`): a report of 50 cameras over 29 days reads some 140,000 quarter
hours whatever the frame rate, and the same on day 1 and day 90 of the frames' history."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.db.models import Max, Sum, prefetch_related_objects
from django.db.models.functions import TruncHour

from llm_reports.history import AlertRecord, Bucket, History, Series
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera
from webapp.ingest.models import QuarterHourCount
from webapp.ingest.series import Tally

LOOKBACK_DAYS = 28


def day_period(day: date, timezone: str) -> tuple[datetime, datetime]:
    """A local calendar day as an aware [start, end) (23 or 25 hours on daylight-saving days)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)


def standard_time(zone: ZoneInfo, year: int) -> dt_timezone:
    """The zone's offset without daylight saving, as a fixed zone to cut hours in.

    Cutting hours in the local zone itself would merge the hour that repeats when the clocks go back (both read
    02:00). The fixed standard offset has the same hour boundaries wherever daylight saving shifts by a whole hour,
    and each bucket start stays the real instant.
    """
    winter = datetime(year, 1, 15, 12, tzinfo=zone)
    return dt_timezone(winter.utcoffset() - (winter.dst() or timedelta(0)))


def camera_names(cameras: list[Camera]) -> dict[int, str]:
    """Camera names as reports use them: the plain name, or "site / name" where two cameras share a name."""
    repeated = Counter(camera.name for camera in cameras)
    return {camera.pk: camera.name if repeated[camera.name] == 1 else str(camera) for camera in cameras}


def build_history(
    cameras: list[Camera],
    period_start: datetime,
    period_end: datetime,
    timezone: str,
    lookback_days: int = LOOKBACK_DAYS,
) -> History:
    """The report input for `cameras` over [period_start, period_end), with `lookback_days` before it.

    Hourly buckets (on the hours of the zone's standard time, see `standard_time`) from the quarter-hour counts: per
    camera, in the order given, a series for its whole view (its alert threshold; empty when it counted nothing)
    and then one for each zone that has counts, by name, with that zone's threshold (None for a zone since deleted).
    Cameras go by `camera_names`; the people-count alerts raised in the period (`period_alerts`) and each camera's
    site come with them. Outages are left empty: the report finds silent hours in the counts themselves.
    """
    zone = ZoneInfo(timezone)
    since = period_start - timedelta(days=lookback_days)
    names = camera_names(cameras)
    hours = standard_time(zone, period_start.year)
    # By camera, zone name ("" for the whole view) and hour. Periods are local days, and every zone's days and hours
    # begin on a quarter hour of UTC, so the quarter hours cut them exactly.
    tallies: dict[tuple[int, str], dict[datetime, Tally]] = defaultdict(lambda: defaultdict(Tally))
    hourly = (
        QuarterHourCount.objects.filter(camera__in=cameras, start__gte=since, start__lt=period_end)
        .annotate(hour=TruncHour("start", tzinfo=hours))
        .values_list("camera", "zone_name", "hour")
        .annotate(Sum("frames"), Sum("total"), Max("peak"))
        .order_by()
    )
    for camera_id, zone_name, hour, *tally in hourly:
        tallies[camera_id, zone_name][hour].add(*tally)
    prefetch_related_objects(cameras, "zones", "site")
    buckets = {
        key: [Bucket(hour, tally.mean, tally.peak, tally.frames) for hour, tally in sorted(by_hour.items())]
        for key, by_hour in tallies.items()
    }

    series = []
    for camera in cameras:
        series.append(Series(names[camera.pk], None, camera.alert_threshold, buckets.get((camera.pk, ""), [])))
        thresholds = {zone.name: zone.alert_threshold for zone in camera.zones.all()}
        for (camera_id, zone_name), zone_buckets in sorted(buckets.items()):
            if camera_id == camera.pk and zone_name:
                series.append(Series(names[camera.pk], zone_name, thresholds.get(zone_name), zone_buckets))
    return History(
        period_start=period_start,
        period_end=period_end,
        timezone=timezone,
        bucket_minutes=60,
        series=series,
        alerts=period_alerts(cameras, names, period_start, period_end),
        sites={names[camera.pk]: camera.site.name for camera in cameras if camera.site},
    )


def period_alerts(
    cameras: list[Camera], names: dict[int, str], period_start: datetime, period_end: datetime
) -> list[AlertRecord]:
    """The people-count alerts raised in the period. Alerts on people per m² stay out: the report's facts speak of
    people, and a density would read as a count."""
    raised = Alert.objects.filter(
        camera__in=cameras, kind=Alert.Kind.COUNT, raised_at__gte=period_start, raised_at__lt=period_end
    ).order_by("raised_at")
    return [
        AlertRecord(
            camera=names[alert.camera_id],
            zone=alert.zone_name or None,
            raised_at=alert.raised_at,
            count=alert.value,
            threshold=alert.threshold,
            acknowledged=alert.state == Alert.State.ACKNOWLEDGED,
        )
        for alert in raised
    ]
