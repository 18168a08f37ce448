"""Count histories with planted events, the benchmark's input: what was planted is known, so recall can be measured.

Four cameras at two sites in Europe/Paris (UTC+2 in October, so a local hour is never the UTC hour), hourly buckets
for four weeks before a one-day report period, so each camera has a usual level for every weekday and hour. Counts
follow a daily shape (quiet nights, a morning and an evening rush, a busy daytime) scaled by weekday, with mild noise
from a seeded random generator: every build of a scenario is the same. Thresholds sit well above ordinary peaks, so
only planted crowds cross them.

Bucket starts, alert and outage times are stored in UTC, as the web app stores them; `Planted` times are local.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from llm_reports.history import AlertRecord, Bucket, History, Outage, Series

TIMEZONE = "Europe/Paris"
LOCAL = ZoneInfo(TIMEZONE)
WEEKS_BEFORE = 4
HOUR = timedelta(hours=1)
WEEKDAY_FACTORS = (1.0, 1.0, 1.0, 1.0, 1.05, 0.85, 0.7)  # Monday first
NOISE = 0.06  # relative standard deviation of a bucket's mean
FRAMES_PER_BUCKET = 60

PlantedKind = Literal["spike", "outage", "quiet_day", "week_surge", "zone_over_threshold", "alert"]
PLANTED_KINDS: tuple[PlantedKind, ...] = ("spike", "outage", "quiet_day", "week_surge", "zone_over_threshold", "alert")

Key = tuple[str, str | None]


@dataclass(frozen=True)
class Planted:
    """One planted event: its kind, where (a camera, or a zone of it) and when, local, [start, end).

    A spike is one hour; an outage its silent span; a quiet day and a week surge the report day; a zone over its
    threshold its breaching hours; an alert the minute it was raised (end None).
    """

    kind: PlantedKind
    camera: str
    zone: str | None
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class Scenario:
    name: str
    history: History
    planted: list[Planted]


@dataclass(frozen=True)
class _Camera:
    name: str
    site: str
    busiest: float  # usual mean at the busiest hour of a weekday
    threshold: float | None
    zones: tuple[tuple[str, float, float | None], ...]  # (zone, its share of the camera's count, threshold)


CAMERAS = (
    _Camera("Harbour steps", "Old Port", 80.0, None, (("Quay", 0.6, None), ("Ferry queue", 0.25, 40.0))),
    _Camera("Fish market", "Old Port", 50.0, None, ()),
    _Camera("Main hall", "Central Station", 200.0, 400.0, (("Ticket hall", 0.3, 120.0),)),
    _Camera("Taxi rank", "Central Station", 30.0, None, ()),
)


def build_scenarios() -> list[Scenario]:
    """The benchmark's scenarios, each with 0 to 4 planted events; the same on every call."""
    return [_evening_crowd(), _camera_outages(), _quiet_market_busy_station(), _ordinary_day()]


def local_time(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), LOCAL)


def _usual_share(hour: int) -> float:
    """A camera's usual mean at `hour` as a share of its busiest weekday hour."""
    morning = math.exp(-(((hour - 8) / 1.5) ** 2))
    evening = math.exp(-(((hour - 18) / 2.0) ** 2))
    daytime = 0.55 if 10 <= hour <= 16 else 0.0
    return max(0.06, morning, evening, daytime)


class _Builder:
    """Ordinary counts for the report day and the weeks before it, which the planting methods then change."""

    def __init__(self, report_day: date, seed: int) -> None:
        self.report_day = report_day
        self.rng = random.Random(seed)
        # (camera, zone) -> local bucket start -> (mean, peak); a missing bucket is an hour without frames.
        self.counts: dict[Key, dict[datetime, tuple[float, float]]] = {}
        self.alerts: list[AlertRecord] = []
        self.outages: list[Outage] = []
        self.planted: list[Planted] = []
        for offset in range(WEEKS_BEFORE * 7, -1, -1):
            day = report_day - timedelta(days=offset)
            for hour in range(24):
                for camera in CAMERAS:
                    self._add_ordinary(camera, local_time(day, hour))

    def _add_ordinary(self, camera: _Camera, start: datetime) -> None:
        usual = camera.busiest * WEEKDAY_FACTORS[start.weekday()] * _usual_share(start.hour)
        mean = usual * self.rng.gauss(1.0, NOISE)
        self.counts.setdefault((camera.name, None), {})[start] = (mean, self._peak(mean))
        for zone, share, _ in camera.zones:
            zone_mean = mean * share * self.rng.gauss(1.0, NOISE)
            self.counts.setdefault((camera.name, zone), {})[start] = (zone_mean, self._peak(zone_mean))

    def _peak(self, mean: float) -> float:
        return mean * self.rng.uniform(1.2, 1.45) + self.rng.uniform(0.5, 2.0)

    def _keys(self, camera: str) -> list[Key]:
        """The camera and its zones: what a camera sees, its zones see a share of."""
        return [key for key in self.counts if key[0] == camera]

    def _scale(self, camera: str, start: datetime, end: datetime, factor: float) -> None:
        for key in self._keys(camera):
            for moment, (mean, peak) in self.counts[key].items():
                if start <= moment < end:
                    self.counts[key][moment] = (mean * factor, peak * factor)

    def spike(self, camera: str, hour: int, extra_people: float) -> None:
        start = local_time(self.report_day, hour)
        mean, peak = self.counts[(camera, None)][start]
        self.counts[(camera, None)][start] = (mean + extra_people, peak + extra_people * 1.3)
        self.planted.append(Planted("spike", camera, None, start, start + HOUR))

    def outage(self, camera: str, first_hour: int, end_hour: int, *, reported: bool) -> None:
        """The camera and its zones send nothing from `first_hour` to `end_hour`; `reported`: its gateway said so."""
        start, end = local_time(self.report_day, first_hour), local_time(self.report_day, end_hour)
        for key in self._keys(camera):
            kept = self.counts[key].items()
            self.counts[key] = {moment: value for moment, value in kept if not start <= moment < end}
        if reported:
            self.outages.append(Outage(camera, start.astimezone(UTC), end.astimezone(UTC)))
        self.planted.append(Planted("outage", camera, None, start, end))

    def quiet_day(self, camera: str, factor: float) -> None:
        start = local_time(self.report_day, 0)
        self._scale(camera, start, start + timedelta(days=1), factor)
        self.planted.append(Planted("quiet_day", camera, None, start, start + timedelta(days=1)))

    def week_surge(self, camera: str, factor: float, week_earlier_factor: float) -> None:
        """The report day busier than usual, and the same day a week earlier quieter: a surge week over week that
        stays within the usual range for the weekday (the median of four weeks shrugs off the quiet one)."""
        start = local_time(self.report_day, 0)
        self._scale(camera, start, start + timedelta(days=1), factor)
        self._scale(camera, start - timedelta(days=7), start - timedelta(days=6), week_earlier_factor)
        self.planted.append(Planted("week_surge", camera, None, start, start + timedelta(days=1)))

    def zone_over_threshold(self, camera: str, zone: str, first_hour: int, peaks: list[float]) -> None:
        """`zone`'s peaks from `first_hour` on, one a bucket, with its means a third higher: a crowd at one spot."""
        start = local_time(self.report_day, first_hour)
        for offset, peak in enumerate(peaks):
            moment = start + offset * HOUR
            mean, _ = self.counts[(camera, zone)][moment]
            self.counts[(camera, zone)][moment] = (mean * 1.33, peak)
        self.planted.append(Planted("zone_over_threshold", camera, zone, start, start + len(peaks) * HOUR))

    def alert(self, camera: str, zone: str | None, hour: int, minute: int, count: float, acknowledged: bool) -> None:
        raised = local_time(self.report_day, hour, minute)
        threshold = _threshold(camera, zone)
        if threshold is None:
            raise ValueError(f"{camera} {zone or ''} has no threshold: no alert is raised without one")
        self.alerts.append(AlertRecord(camera, zone, raised.astimezone(UTC), count, threshold, acknowledged))
        self.planted.append(Planted("alert", camera, zone, raised, None))

    def scenario(self, name: str) -> Scenario:
        series = [
            Series(
                camera=camera,
                zone=zone,
                threshold=_threshold(camera, zone),
                buckets=[
                    Bucket(start.astimezone(UTC), round(mean, 1), round(peak, 1), FRAMES_PER_BUCKET)
                    for start, (mean, peak) in sorted(self.counts[(camera, zone)].items())
                ],
            )
            for camera, zone in self.counts
        ]
        period_start = local_time(self.report_day, 0)
        history = History(
            period_start=period_start.astimezone(UTC),
            period_end=(period_start + timedelta(days=1)).astimezone(UTC),
            timezone=TIMEZONE,
            bucket_minutes=60,
            series=series,
            alerts=self.alerts,
            sites={camera.name: camera.site for camera in CAMERAS},
            outages=self.outages,
        )
        return Scenario(name, history, self.planted)


def _threshold(camera: str, zone: str | None) -> float | None:
    for spec in CAMERAS:
        if spec.name == camera:
            if zone is None:
                return spec.threshold
            return next(threshold for name, _, threshold in spec.zones if name == zone)
    raise KeyError(camera)


def _evening_crowd() -> Scenario:
    """Thursday: a late-morning rush at the fish market; the ticket hall crowded over its threshold in the evening,
    with an acknowledged alert."""
    builder = _Builder(date(2026, 10, 15), seed=1)
    builder.spike("Fish market", 11, extra_people=60)
    builder.zone_over_threshold("Main hall", "Ticket hall", 17, peaks=[131.0, 146.0, 127.0])
    builder.alert("Main hall", "Ticket hall", 17, 25, count=138, acknowledged=True)
    return builder.scenario("evening crowd")


def _camera_outages() -> Scenario:
    """Tuesday: the taxi rank's camera reported down all morning; the harbour camera silent in the afternoon without
    a report; a queue over its threshold at the ferry, alerted and not acknowledged."""
    builder = _Builder(date(2026, 10, 13), seed=2)
    builder.outage("Taxi rank", 7, 12, reported=True)
    builder.outage("Harbour steps", 14, 17, reported=False)
    builder.zone_over_threshold("Harbour steps", "Ferry queue", 9, peaks=[47.0])
    builder.alert("Harbour steps", "Ferry queue", 9, 15, count=44, acknowledged=False)
    return builder.scenario("camera outages")


def _quiet_market_busy_station() -> Scenario:
    """Saturday: the fish market at well under half its usual crowd all day; the station's main hall busier than a
    week earlier; an evening crowd at the taxi rank."""
    builder = _Builder(date(2026, 10, 17), seed=3)
    builder.quiet_day("Fish market", factor=0.4)
    builder.week_surge("Main hall", factor=1.2, week_earlier_factor=0.75)
    builder.spike("Taxi rank", 20, extra_people=35)
    return builder.scenario("quiet market, busy station")


def _ordinary_day() -> Scenario:
    """Wednesday with nothing planted: only the noise of an ordinary day, where nothing should stand out."""
    return _Builder(date(2026, 10, 14), seed=4).scenario("ordinary day")
