"""Exact facts about a report period, computed in code from the count history so the model never has to do sums.

A small model states numbers fluently and wrongly, so every number, time and ranking a report may mention is computed
here, deterministically, and told in sentences rendered by code (`events`); the model only chooses among them.
Hours and weekdays are local to the history's timezone: operators read "14:00 on Saturday" on their own clock.

Rounding for people happens in one place, `round_shown`: the prompt, the events' sentences and the stored facts all
go through it, so a mean of 119.6 reads 120 everywhere.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from llm_reports.history import Bucket, History, Series

UNUSUAL_RELATIVE_MARGIN = 0.5
"""A bucket is unusual when it is further from its usual level than this share of that level..."""
UNUSUAL_MIN_PEOPLE = 10.0
"""...and further than this many people: on a quiet camera (usual 4) half the usual level is noise, not news."""
UNUSUAL_MIN_EARLIER_VALUES = 2
"""A usual level needs at least this many earlier buckets of the same local hour and weekday."""

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEK = timedelta(days=7)

EntityKey = tuple[str, str | None]
"""(camera, zone): zone None is the whole camera. Zone names repeat across cameras, so a zone needs its camera."""


def round_shown(value: float, decimals: int = 0) -> Decimal:
    """The value as people see it: half away from zero to `decimals` places (counts and percentages use 0).

    Decimal rather than round(): round() rounds half to even (120.5 -> 120), which readers do not expect.
    """
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def percent_change(value: float, reference: float | None) -> float | None:
    """`value` against `reference` in percent of it, signed; None without a reference or against zero."""
    return (value - reference) / reference * 100 if reference else None


def ends_within_day(start: datetime, end: datetime) -> bool:
    """Whether the span [start, end) lies within start's local day (an end at the next midnight still does)."""
    return (end - timedelta(microseconds=1)).date() == start.date()


def format_people(value: float) -> str:
    """A count of people as shown: whole people, thousands separated ("1,234")."""
    return f"{round_shown(value):,}"


def format_percent(value: float) -> str:
    """A percentage as shown, without its sign: the sentence says "higher" or "lower"."""
    return f"{abs(round_shown(value)):,}%"


def format_time(moment: datetime) -> str:
    """A local clock time on the 24-hour clock ("14:00"), the form the prompt and the sentences use."""
    return f"{moment.hour:02d}:{moment.minute:02d}"


def format_day(moment: datetime | date) -> str:
    """A local day as "Sat 28 Nov", independent of the machine's locale."""
    return f"{WEEKDAY_NAMES[moment.weekday()][:3]} {moment.day} {MONTH_NAMES[moment.month - 1][:3]}"


@dataclass(frozen=True)
class Change:
    """The period's mean against the mean of an earlier window of the same length."""

    current: float | None
    previous: float | None
    percent: float | None  # None when either window has no data or the earlier mean is zero

    @classmethod
    def between(cls, current: float | None, previous: float | None) -> Change:
        return cls(current, previous, None if current is None else percent_change(current, previous))


@dataclass(frozen=True)
class SeriesFacts:
    """One camera (zone None) or one zone of a camera, over the report period."""

    camera: str
    zone: str | None
    mean: float | None  # mean of the period's bucket means; None when the period has no buckets
    peak: float | None  # the highest bucket peak
    peak_at: datetime | None  # local start of the bucket with that peak (the earliest, on a tie)
    frames: int
    buckets: int
    threshold: float | None
    day_change: Change  # against the same-length window just before the period
    week_change: Change  # against the period seven days earlier

    @property
    def key(self) -> EntityKey:
        return (self.camera, self.zone)


@dataclass(frozen=True)
class ThresholdBreaches:
    """The period's buckets of one series whose peak exceeded that series' threshold."""

    camera: str
    zone: str | None
    threshold: float
    count: int
    first_at: datetime
    last_at: datetime
    highest_peak: float
    highest_peak_at: datetime
    percent_over: float | None  # the highest peak above the threshold, in percent of it; None for a zero threshold
    times: tuple[datetime, ...]  # local start of every breaching bucket

    @property
    def key(self) -> EntityKey:
        return (self.camera, self.zone)


@dataclass(frozen=True)
class UnusualValue:
    """A period bucket of a camera far from that camera's usual level for the same local hour and weekday."""

    camera: str
    at: datetime
    value: float  # the bucket's mean
    usual: float  # median of the earlier same-hour-and-weekday bucket means
    direction: Literal["above", "below"]
    percent_from_usual: float | None  # signed; None when the usual level is zero

    @property
    def key(self) -> EntityKey:
        return (self.camera, None)


@dataclass(frozen=True)
class AlertFact:
    """An alert raised during the period."""

    camera: str
    zone: str | None
    raised_at: datetime
    count: float
    threshold: float
    acknowledged: bool

    @property
    def key(self) -> EntityKey:
        return (self.camera, self.zone)


@dataclass(frozen=True)
class Facts:
    """Everything a report may state about the period; times are local to `timezone`."""

    timezone: str
    period_start: datetime
    period_end: datetime
    previous_start: datetime  # the day-over-day window is [previous_start, period_start)
    bucket_minutes: int
    cameras: tuple[SeriesFacts, ...]
    zones: tuple[SeriesFacts, ...]
    busiest_cameras: tuple[str, ...]  # by mean, busiest first; cameras without counts are left out
    busiest_zones: tuple[EntityKey, ...]
    highest_camera_peak: EntityKey | None
    highest_zone_peak: EntityKey | None
    overall_mean: float | None  # mean of every camera bucket mean in the period: a typical camera's count
    overall_day_change: Change
    overall_week_change: Change
    breaches: tuple[ThresholdBreaches, ...]
    alerts: tuple[AlertFact, ...]
    unusual: tuple[UnusualValue, ...]
    sites: tuple[tuple[str, str], ...]  # (camera, site name)

    @property
    def is_single_day(self) -> bool:
        """True when the period is one local calendar day, so a narrative may say "the previous day"."""
        starts_at_midnight = (self.period_start.hour, self.period_start.minute) == (0, 0)
        return starts_at_midnight and self.period_end == self.period_start + timedelta(days=1)

    def series(self, key: EntityKey) -> SeriesFacts:
        for series in (*self.cameras, *self.zones):
            if series.key == key:
                return series
        raise KeyError(key)

    def zones_of(self, camera: str) -> tuple[SeriesFacts, ...]:
        return tuple(zone for zone in self.zones if zone.camera == camera)

    def days(self) -> list[date]:
        """The local calendar days the period touches, and those of the two windows it is compared with."""
        windows = [
            (self.period_start, self.period_end),
            (self.previous_start, self.period_start),
            (self.period_start - WEEK, self.period_end - WEEK),
        ]
        days: set[date] = set()
        for start, end in windows:
            day = start.date()
            while datetime.combine(day, datetime.min.time(), start.tzinfo) < end:
                days.add(day)
                day += timedelta(days=1)
        return sorted(days)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ISO times with their offset, floats to two places, keys as lists."""
        return _jsonable(self)


def compute_facts(history: History) -> Facts:
    """Compute the period's facts from the history's buckets."""
    if history.period_start.tzinfo is None or history.period_end.tzinfo is None:
        raise ValueError("the period's start and end must be timezone-aware")
    zone_info = ZoneInfo(history.timezone)
    period_start = history.period_start.astimezone(zone_info)
    period_end = history.period_end.astimezone(zone_info)
    # Wall-clock arithmetic (same tzinfo on both sides), so a day that loses an hour to DST still compares with
    # the whole previous day and the same hours a week earlier.
    previous_start = period_start - (period_end - period_start)
    windows = _Windows(
        period=(period_start, period_end),
        previous=(previous_start, period_start),
        week_earlier=(period_start - WEEK, period_end - WEEK),
    )

    cameras = tuple(_series_facts(series, windows, zone_info) for series in history.series if series.zone is None)
    zones = tuple(_series_facts(series, windows, zone_info) for series in history.series if series.zone is not None)
    camera_series = [series for series in history.series if series.zone is None]

    def pooled_mean(window: tuple[datetime, datetime]) -> float | None:
        return _mean([bucket.mean for series in camera_series for bucket in windows.buckets(series, window)])

    overall_mean = pooled_mean(windows.period)
    return Facts(
        timezone=history.timezone,
        period_start=period_start,
        period_end=period_end,
        previous_start=previous_start,
        bucket_minutes=history.bucket_minutes,
        cameras=cameras,
        zones=zones,
        busiest_cameras=tuple(key[0] for key in _ranked_by_mean(cameras)),
        busiest_zones=_ranked_by_mean(zones),
        highest_camera_peak=_highest_peak(cameras),
        highest_zone_peak=_highest_peak(zones),
        overall_mean=overall_mean,
        overall_day_change=Change.between(overall_mean, pooled_mean(windows.previous)),
        overall_week_change=Change.between(overall_mean, pooled_mean(windows.week_earlier)),
        breaches=tuple(
            breach
            for series in history.series
            if (breach := _breaches(series, windows.buckets(series, windows.period), zone_info)) is not None
        ),
        alerts=tuple(
            AlertFact(
                camera=alert.camera,
                zone=alert.zone,
                raised_at=alert.raised_at.astimezone(zone_info),
                count=alert.count,
                threshold=alert.threshold,
                acknowledged=alert.acknowledged,
            )
            for alert in sorted(history.alerts, key=lambda alert: alert.raised_at)
            if _within(alert.raised_at, windows.period)
        ),
        unusual=tuple(unusual for series in camera_series for unusual in _unusual_values(series, windows, zone_info)),
        sites=tuple(sorted(history.sites.items())),
    )


@dataclass(frozen=True)
class _Windows:
    """The period and the two windows it is compared with, each [start, end)."""

    period: tuple[datetime, datetime]
    previous: tuple[datetime, datetime]
    week_earlier: tuple[datetime, datetime]

    @staticmethod
    def buckets(series: Series, window: tuple[datetime, datetime]) -> list[Bucket]:
        return [bucket for bucket in series.buckets if _within(bucket.start, window)]


def _within(moment: datetime, window: tuple[datetime, datetime]) -> bool:
    """Compared in UTC: local wall times repeat in the hour DST gives back, instants do not."""
    start, end = window
    return start.astimezone(UTC) <= moment.astimezone(UTC) < end.astimezone(UTC)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _series_facts(series: Series, windows: _Windows, zone_info: ZoneInfo) -> SeriesFacts:
    buckets = windows.buckets(series, windows.period)
    mean = _mean([bucket.mean for bucket in buckets])
    # max() keeps the first of equal peaks: the earliest bucket, since buckets are oldest first.
    peak_bucket = max(buckets, key=lambda bucket: bucket.peak, default=None)
    return SeriesFacts(
        camera=series.camera,
        zone=series.zone,
        mean=mean,
        peak=peak_bucket.peak if peak_bucket else None,
        peak_at=peak_bucket.start.astimezone(zone_info) if peak_bucket else None,
        frames=sum(bucket.frames for bucket in buckets),
        buckets=len(buckets),
        threshold=series.threshold,
        day_change=Change.between(mean, _mean([bucket.mean for bucket in windows.buckets(series, windows.previous)])),
        week_change=Change.between(
            mean, _mean([bucket.mean for bucket in windows.buckets(series, windows.week_earlier)])
        ),
    )


def _ranked_by_mean(series_facts: tuple[SeriesFacts, ...]) -> tuple[EntityKey, ...]:
    counted = [(series.mean, series.key) for series in series_facts if series.mean is not None]
    return tuple(key for _, key in sorted(counted, key=lambda counted_mean: (-counted_mean[0], counted_mean[1])))


def _highest_peak(series_facts: tuple[SeriesFacts, ...]) -> EntityKey | None:
    counted = [(series.peak, series) for series in series_facts if series.peak is not None]
    if not counted:
        return None
    return min(counted, key=lambda peaked: (-peaked[0], peaked[1].peak_at, peaked[1].key))[1].key


def _breaches(series: Series, period_buckets: list[Bucket], zone_info: ZoneInfo) -> ThresholdBreaches | None:
    if series.threshold is None:
        return None
    over = [bucket for bucket in period_buckets if bucket.peak > series.threshold]
    if not over:
        return None
    highest = max(over, key=lambda bucket: bucket.peak)
    return ThresholdBreaches(
        camera=series.camera,
        zone=series.zone,
        threshold=series.threshold,
        count=len(over),
        first_at=over[0].start.astimezone(zone_info),
        last_at=over[-1].start.astimezone(zone_info),
        highest_peak=highest.peak,
        highest_peak_at=highest.start.astimezone(zone_info),
        percent_over=percent_change(highest.peak, series.threshold),
        times=tuple(bucket.start.astimezone(zone_info) for bucket in over),
    )


def _unusual_values(series: Series, windows: _Windows, zone_info: ZoneInfo) -> list[UnusualValue]:
    """Period buckets far from the camera's usual level for their local hour and weekday.

    The usual level is the median of the means of the earlier buckets (before the period) that share the bucket's
    local weekday and hour; the median shrugs off an earlier holiday or outage. A bucket is unusual when it differs
    from that level by more than max(UNUSUAL_RELATIVE_MARGIN x usual, UNUSUAL_MIN_PEOPLE). Without at least
    UNUSUAL_MIN_EARLIER_VALUES earlier values there is no usual level, and nothing is flagged.
    """
    period_start = windows.period[0].astimezone(UTC)
    earlier_means: dict[tuple[int, int], list[float]] = defaultdict(list)
    for bucket in series.buckets:
        if bucket.start.astimezone(UTC) < period_start:
            local = bucket.start.astimezone(zone_info)
            earlier_means[(local.weekday(), local.hour)].append(bucket.mean)
    unusual = []
    for bucket in windows.buckets(series, windows.period):
        local = bucket.start.astimezone(zone_info)
        usual_values = earlier_means[(local.weekday(), local.hour)]
        if len(usual_values) < UNUSUAL_MIN_EARLIER_VALUES:
            continue
        usual = statistics.median(usual_values)
        if abs(bucket.mean - usual) > max(UNUSUAL_RELATIVE_MARGIN * usual, UNUSUAL_MIN_PEOPLE):
            unusual.append(
                UnusualValue(
                    camera=series.camera,
                    at=local,
                    value=bucket.mean,
                    usual=usual,
                    direction="above" if bucket.mean > usual else "below",
                    percent_from_usual=percent_change(bucket.mean, usual),
                )
            )
    return unusual


def _jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return {field.name: _jsonable(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return float(round_shown(value, 2))
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value
