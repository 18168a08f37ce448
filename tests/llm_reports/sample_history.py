"""A hand-made count history shared by the report tests, with values simple enough to compute by hand.

Five weeks of hourly buckets in Asia/Shanghai (UTC+8, so a local hour is never the UTC hour), ending with the
report day, Saturday 28 November 2026. Bucket starts are stored in UTC: the code must convert them itself.

- East entrance: mean 40 + hour, peak mean + 20, 120 frames; zones Far side (mean 30 + hour, peak mean + 10,
  threshold 150) and Near side (mean 10, peak 15). The day before the report day is 10 people busier on the camera
  and on Far side. Planted spike at 14:00 on the report day: camera 175/220, Far side 150/160, Near side 25/30.
- West gate: mean 30, peak 60, 60 frames, threshold 100; mean 20 a week before the report day. Planted breach at
  18:00 and 19:00 on the report day: mean 35, peaks 130 and 140 (means too close to usual to be unusual).
- Gate 2: mean 20, peak 30, 60 frames, no threshold; the report day has no 03:00 bucket. Planted dip at 08:00 on
  the report day: mean 5.
- Alerts: Far side at 14:10 (acknowledged) and West gate at 18:05 on the report day, West gate at 19:00 the day
  before (outside the period).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from llm_reports.history import AlertRecord, Bucket, History, Series

TIMEZONE = "Asia/Shanghai"
LOCAL = ZoneInfo(TIMEZONE)
REPORT_DAY = date(2026, 11, 28)
DAY_BEFORE = REPORT_DAY - timedelta(days=1)
WEEK_BEFORE = REPORT_DAY - timedelta(days=7)


def local_time(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)


def build_history(planted: bool = True, weeks: int = 5) -> History:
    """The history described above; `planted=False` leaves out the spike, the breach, the dip and the alerts."""
    days = [REPORT_DAY - timedelta(days=offset) for offset in range(weeks * 7 - 1, -1, -1)]
    values: dict[tuple[str, str | None], list[tuple[datetime, float, float, int]]] = {}

    def add(camera: str, zone: str | None, day: date, hour: int, mean: float, peak: float, frames: int) -> None:
        start = local_time(day, hour).astimezone(UTC)
        values.setdefault((camera, zone), []).append((start, mean, peak, frames))

    for day in days:
        busier = 10 if day == DAY_BEFORE else 0
        spike_day = planted and day == REPORT_DAY
        for hour in range(24):
            spike = spike_day and hour == 14
            camera_mean = 175 if spike else 40 + hour + busier
            add("East entrance", None, day, hour, camera_mean, 220 if spike else camera_mean + 20, 120)
            far_mean = 150 if spike else 30 + hour + busier
            add("East entrance", "Far side", day, hour, far_mean, 160 if spike else far_mean + 10, 120)
            add("East entrance", "Near side", day, hour, 25 if spike else 10, 30 if spike else 15, 120)

            west_mean, west_peak = (20, 60) if day == WEEK_BEFORE else (30, 60)
            if spike_day and hour in (18, 19):
                west_mean, west_peak = 35, 130 + (hour - 18) * 10
            add("West gate", None, day, hour, west_mean, west_peak, 60)

            if not (day == REPORT_DAY and hour == 3):
                add("Gate 2", None, day, hour, 5 if spike_day and hour == 8 else 20, 30, 60)

    thresholds = {("East entrance", "Far side"): 150.0, ("West gate", None): 100.0}
    order = [("East entrance", None), ("East entrance", "Far side"), ("East entrance", "Near side")]
    order += [("West gate", None), ("Gate 2", None)]
    series = [
        Series(
            camera=camera,
            zone=zone,
            threshold=thresholds.get((camera, zone)),
            buckets=[Bucket(start, mean, peak, frames) for start, mean, peak, frames in values[(camera, zone)]],
        )
        for camera, zone in order
    ]
    alerts = []
    if planted:
        alerts = [
            AlertRecord("West gate", None, local_time(DAY_BEFORE, 19).astimezone(UTC), 120, 100),
            AlertRecord("East entrance", "Far side", local_time(REPORT_DAY, 14, 10), 160, 150, acknowledged=True),
            AlertRecord("West gate", None, local_time(REPORT_DAY, 18, 5), 130, 100),
        ]
    return History(
        period_start=local_time(REPORT_DAY, 0).astimezone(UTC),
        period_end=local_time(REPORT_DAY + timedelta(days=1), 0).astimezone(UTC),
        timezone=TIMEZONE,
        bucket_minutes=60,
        series=series,
        alerts=alerts,
        sites={"East entrance": "Bund Plaza"},
    )


def word_count(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())
