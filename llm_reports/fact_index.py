"""The facts rearranged for the verifier: for each camera and zone, and for the period as a whole, what may be said.

`Facts` holds its values by kind (series, breaches, unusual values, alerts), but a sentence's number, percentage or
clock time is right only when it is a fact about the entity the sentence is talking about, so the checks look facts up
per entity. This index is the one place that decides which values count as facts about what, including the derived
ones a report may state (how many alerts a camera had, the period's length in hours or days, the end of a peak's
bucket in "14:00 to 15:00"), and it holds the names, days and ranks that sentences are read against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from llm_reports.facts import WEEK, EntityKey, Facts, SeriesFacts

PercentKind = Literal["day", "week", "usual", "threshold"]


@dataclass
class Known:
    """The values, percentages and times that may be stated about one entity, or about the period as a whole."""

    numbers: list[float] = field(default_factory=list)
    percents: list[tuple[float, PercentKind]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    range_ends: list[datetime] = field(default_factory=list)  # ends of the buckets that start at some of `times`


@dataclass(frozen=True)
class Scope:
    """The entity a part of a sentence is about: a camera (with its zones named in the sentence) or a zone."""

    label: str
    keys: frozenset[EntityKey]


class FactIndex:
    """The facts rearranged for lookup: per entity, the period-wide ones, the names, the days."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.period = Known()
        self.entities: dict[EntityKey, Known] = {}
        bucket = timedelta(minutes=facts.bucket_minutes)
        for series in (*facts.cameras, *facts.zones):
            self._add_series(series, bucket)
        for breach in facts.breaches:
            known = self._known(breach.key)
            known.numbers += [breach.threshold, breach.count, breach.highest_peak]
            if breach.percent_over is not None:
                known.percents.append((breach.percent_over, "threshold"))
            for moment in breach.times:
                known.times.append(moment)
                known.range_ends.append(moment + bucket)
        for unusual in facts.unusual:
            known = self._known(unusual.key)
            known.numbers += [unusual.value, unusual.usual]
            if unusual.percent_from_usual is not None:
                known.percents.append((unusual.percent_from_usual, "usual"))
            known.times.append(unusual.at)
            known.range_ends.append(unusual.at + bucket)
        for alert in facts.alerts:
            known = self._known(alert.key)
            known.numbers += [alert.count, alert.threshold]
            known.times.append(alert.raised_at)
        for key in self.entities:
            self.entities[key].numbers.append(sum(alert.key == key for alert in facts.alerts))
            self.entities[key].numbers.append(sum(unusual.key == key for unusual in facts.unusual))
        self._add_period_facts()

        self.days = facts.days()
        self.years = {day.year for day in self.days}
        self.ranks: dict[EntityKey, int] = {
            (camera, None): rank for rank, camera in enumerate(facts.busiest_cameras, 1)
        }
        self.ranks |= {key: rank for rank, key in enumerate(facts.busiest_zones, 1)}
        self.camera_names = {series.camera.lower(): series.camera for series in facts.cameras}
        self.zone_keys: dict[str, list[EntityKey]] = {}
        for zone in facts.zones:
            self.zone_keys.setdefault(zone.zone.lower(), []).append(zone.key)
        self.site_names = {site.lower(): site for _, site in facts.sites}
        names = {*self.camera_names, *self.zone_keys, *self.site_names}
        alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
        self.name_pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if names else None

    def _known(self, key: EntityKey) -> Known:
        return self.entities.setdefault(key, Known())

    def _add_series(self, series: SeriesFacts, bucket: timedelta) -> None:
        known = self._known(series.key)
        values = (series.mean, series.peak, series.threshold, series.day_change.previous, series.week_change.previous)
        known.numbers += [value for value in values if value is not None]
        known.numbers.append(series.frames)
        known.percents += [
            (change.percent, kind)
            for change, kind in ((series.day_change, "day"), (series.week_change, "week"))
            if change.percent is not None
        ]
        if series.peak_at is not None:
            known.times.append(series.peak_at)
            known.range_ends.append(series.peak_at + bucket)

    def _add_period_facts(self) -> None:
        facts = self.facts
        hours = (facts.period_end - facts.period_start) / timedelta(hours=1)
        overall = (facts.overall_mean, facts.overall_day_change.previous, facts.overall_week_change.previous)
        self.period.numbers += [value for value in overall if value is not None]
        self.period.numbers += [
            len(facts.cameras),
            len(facts.zones),
            len(facts.alerts),
            sum(breach.count for breach in facts.breaches),
            len(facts.unusual),
            hours,
            WEEK.days,
        ]
        if hours % 24 == 0:
            self.period.numbers.append(hours // 24)
        self.period.percents += [
            (change.percent, kind)
            for change, kind in ((facts.overall_day_change, "day"), (facts.overall_week_change, "week"))
            if change.percent is not None
        ]
        self.period.times += [facts.period_start, facts.period_end]
        self.period.range_ends.append(facts.period_end)

    def known_about(self, scope: Scope | None) -> list[Known]:
        """The period-wide facts plus those of the scope's entities (of every entity when the scope is unknown)."""
        if scope is None:
            return [self.period, *self.entities.values()]
        return [self.period, *(self.entities[key] for key in scope.keys if key in self.entities)]
