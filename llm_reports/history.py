"""The report input: a plain history of counts that webapp builds from its database (no Django in here).

Times are timezone-aware datetimes. Each series is bucketed (for example hourly) and covers the report period and
the weeks before it, which give each camera its usual level for an hour of a weekday.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Bucket:
    start: datetime
    mean: float  # people, averaged over the frames counted in the bucket
    peak: float  # the highest count of a single frame in the bucket
    frames: int


@dataclass(frozen=True)
class Series:
    """Counts of one camera (zone None) or of one zone of that camera."""

    camera: str
    zone: str | None
    threshold: float | None  # people; a bucket whose peak exceeds it is a breach
    buckets: list[Bucket]  # oldest first, one per bucket that had frames


@dataclass(frozen=True)
class AlertRecord:
    camera: str
    zone: str | None
    raised_at: datetime
    count: float
    threshold: float
    acknowledged: bool = False


@dataclass(frozen=True)
class Outage:
    """A time a camera was known to be down (reported by its gateway or the server), [start, end); end None:
    still down at the end of the history. Silent hours are also found from the counts themselves (`events`)."""

    camera: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class History:
    period_start: datetime  # the report's period, [start, end)
    period_end: datetime
    timezone: str  # IANA name, for example "Europe/Paris": hours and weekdays are local to it
    bucket_minutes: int
    series: list[Series]  # every camera's series, then its zones' series
    alerts: list[AlertRecord] = field(default_factory=list)
    sites: dict[str, str] = field(default_factory=dict)  # camera -> site name
    outages: list[Outage] = field(default_factory=list)

    def cameras(self) -> list[str]:
        return sorted({series.camera for series in self.series})
