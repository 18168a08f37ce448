"""What a report can tell: the period's events and levels as ranked facts, each with an id and a sentence from code.

No sentence an operator reads is written by the model. The model chooses and orders facts by their ids (`report`);
every number, time, name and unit in a report comes from a sentence rendered here, from values computed in code
(`facts` and the history itself). A fact's importance ranks it: alerts first, then crowding over a threshold,
cameras that went silent, hours and days unusual for their weekday, week-over-week changes, the busiest hour of each
site, the cameras ranked by level, and last each camera's and zone's level and peak. Facts at or above
`MUST_TELL` are events a report never leaves out.

Times are local to the history's time zone, written "14:00" and days "Sat 28 Nov" (`facts.format_*`); people are
rounded the way `facts.round_shown` rounds them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from llm_reports.facts import (
    WEEKDAY_NAMES,
    AlertFact,
    EntityKey,
    Facts,
    SeriesFacts,
    ThresholdBreaches,
    ends_within_day,
    format_day,
    format_people,
    format_percent,
    format_time,
    percent_change,
    round_shown,
)
from llm_reports.history import History, Outage, Series

EventKind = Literal[
    "alert",
    "breach",
    "outage",
    "unusual_hour",
    "unusual_day",
    "week_change",
    "busiest_hour",
    "ranking",
    "level",
]
KIND_LABELS: dict[str, str] = {
    "alert": "alert",
    "breach": "over threshold",
    "outage": "silent camera",
    "unusual_hour": "unusual hour",
    "unusual_day": "unusual day",
    "week_change": "week over week",
    "busiest_hour": "busiest hour",
    "ranking": "ranking",
    "level": "level and peak",
}

MUST_TELL = 50.0
"""Facts this important are told in every report, whether or not the model chose them."""
SILENT_MIN_HOURS = 2
"""A camera silent for fewer consecutive usual hours than this is a hiccup (a late upload), not an outage."""
USUAL_MIN_EARLIER_DAYS = 2
"""A usual hour or day needs at least this many earlier same weekdays with counts."""
UNUSUAL_DAY_RELATIVE_MARGIN = 0.3
"""A day is unusual when its mean is further than this share from the usual mean for its weekday..."""
UNUSUAL_DAY_MIN_PEOPLE = 5.0
"""...and further than this many people."""
RANKING_LENGTH = 4
"""A ranking names the busiest this many cameras or zones: a readable sentence; the page's tables list them all."""
NOTABLE_WEEK_CHANGE_PERCENT = 25.0
"""A week-over-week change is an event from this size on (and `UNUSUAL_DAY_MIN_PEOPLE` people); smaller ones stay
facts the model may still choose."""


@dataclass(frozen=True)
class Event:
    """One thing a report may say, as the sentence that says it and the values it states (for tables and JSON)."""

    id: str  # "F1", "F2", ... in rank order: what the model names to choose it
    kind: EventKind
    camera: str | None  # None for a site's fact or a ranking
    zone: str | None
    site: str | None
    importance: float
    sentence: str
    start: datetime | None  # local: when it began (or the peak's time)
    end: datetime | None  # local, exclusive; None for a moment or when it lasted past the period
    value: float | None  # people: the count, mean or peak the sentence states first
    reference: float | None  # what the value is compared with: the threshold, usual level or week-earlier mean
    percent: float | None  # value against reference, signed

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("start", "end"):
            data[name] = data[name].isoformat() if data[name] else None
        for name in ("value", "reference", "percent", "importance"):
            data[name] = float(round_shown(data[name], 2)) if data[name] is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """The event `as_dict` stored (values rounded as stored), for answering questions on a report later."""
        values = dict(data)
        for name in ("start", "end"):
            values[name] = datetime.fromisoformat(values[name]) if values[name] else None
        return cls(**values)


@dataclass(frozen=True)
class _Draft:
    """An event before ranking gives it its id."""

    kind: EventKind
    importance: float
    sentence: str
    camera: str | None = None
    zone: str | None = None
    site: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    value: float | None = None
    reference: float | None = None
    percent: float | None = None


def find_events(history: History, facts: Facts) -> tuple[Event, ...]:
    """Every fact the report may tell, most important first, with ids F1, F2, ... in that order."""
    zone_info = ZoneInfo(history.timezone)
    teller = _Teller(facts, zone_info)
    drafts: list[_Draft] = []
    alerts_by_subject: dict[EntityKey, list[AlertFact]] = defaultdict(list)
    for alert in facts.alerts:
        alerts_by_subject[alert.key].append(alert)
    # A subject's alerts are told with its hours over the threshold, one sentence of crowding each; alone otherwise.
    breached = {breach.key for breach in facts.breaches}
    drafts += [teller.alerts(alerts) for key, alerts in alerts_by_subject.items() if key not in breached]
    drafts += [teller.breach(breach, alerts_by_subject.get(breach.key, [])) for breach in facts.breaches]
    drafts += _outages(history, teller)
    unusual_days = [draft for series in _camera_series(history) for draft in _unusual_days(series, history, teller)]
    drafts += unusual_days
    drafts += _unusual_hours(facts, teller, unusual_days)
    drafts += [draft for series in facts.cameras if (draft := teller.week_change(series)) is not None]
    drafts += _busiest_hours(history, teller)
    drafts += [draft for draft in (teller.ranking(facts, "camera"), teller.ranking(facts, "zone")) if draft]
    drafts += [teller.level(series) for series in (*facts.cameras, *facts.zones)]
    ranked = sorted(
        drafts, key=lambda draft: (-draft.importance, draft.start or facts.period_start, draft.camera or "")
    )
    return tuple(Event(id=f"F{number}", **vars(draft)) for number, draft in enumerate(ranked, start=1))


def must_tell(events: tuple[Event, ...]) -> list[Event]:
    return [event for event in events if event.importance >= MUST_TELL]


def _ranked_mean(facts: Facts, key: EntityKey) -> float:
    """The period mean of a ranked camera or zone: only those with counts are ranked (facts)."""
    mean = facts.series(key).mean
    if mean is None:
        raise ValueError(f"{entity_name(key)} is ranked without counts")
    return mean


def entity_name(key: EntityKey) -> str:
    """How sentences name a camera or zone: a zone always with its camera, since zone names repeat across cameras."""
    camera, zone = key
    if zone is None:
        return camera
    possessive = f"{camera}'" if camera.endswith("s") else f"{camera}'s"  # "Harbour steps' Quay zone"
    return f"{possessive} {zone}" + ("" if zone.lower().endswith(("zone", "area")) else " zone")


class _Teller:
    """Renders each kind of fact as a sentence, with the period's days left out where the period is one day."""

    def __init__(self, facts: Facts, zone_info: ZoneInfo) -> None:
        self.facts = facts
        self.zone_info = zone_info
        self.one_day = facts.is_single_day
        self.hour = timedelta(minutes=facts.bucket_minutes)

    def at(self, moment: datetime) -> str:
        return f"{format_time(moment)} on {format_day(moment)}"

    def span(self, start: datetime, end: datetime | None) -> str:
        """ "on Sat 28 Nov, from 18:00 to 20:00" within a day, else each end with its day."""
        if end is None:
            return f"from {self.at(start)} to the end of the period"
        if ends_within_day(start, end):
            return f"on {format_day(start)}, from {format_time(start)} to {_until(end)}"
        return f"from {self.at(start)} to {self.at(end)}"

    def alerts(self, alerts: list[AlertFact]) -> _Draft:
        """One camera's or zone's alerts (in the order raised): each alone when one, else together, so that a busy
        camera's tenth alert does not crowd out another camera's events."""
        name = entity_name(alerts[0].key)
        highest = max(alerts, key=lambda alert: alert.count)
        unworded = _Draft(
            kind="alert",
            importance=_alerts_importance(alerts),
            sentence="",
            camera=highest.camera,
            zone=highest.zone,
            start=alerts[0].raised_at,
            value=highest.count,
            reference=highest.threshold,
            percent=percent_change(highest.count, highest.threshold),
        )
        against = f"{format_people(highest.count)} people against a threshold of {format_people(highest.threshold)}"
        if len(alerts) == 1:
            sentence = f"An alert was raised for {name} at {self.at(highest.raised_at)}: {against}, "
            return replace(unworded, sentence=f"{sentence}{_acknowledged(alerts)}.")
        first, last = alerts[0].raised_at, alerts[-1].raised_at
        if first.date() == last.date():
            when = f"on {format_day(first)}, from {format_time(first)} to {format_time(last)}"
        else:
            when = f"from {self.at(first)} to {self.at(last)}"
        peak_at = format_time(highest.raised_at) if first.date() == last.date() else self.at(highest.raised_at)
        sentence = f"{len(alerts)} alerts were raised for {name} {when}, the highest at {peak_at}: {against}; "
        return replace(unworded, sentence=f"{sentence}{_acknowledged(alerts)}.")

    def breach(self, breach: ThresholdBreaches, alerts: list[AlertFact]) -> _Draft:
        """The hours over the threshold, with the subject's `alerts` of the period (in the order raised)."""
        name = entity_name(breach.key)
        hours = breach.count
        end = breach.last_at + self.hour
        consecutive = breach.last_at - breach.first_at == self.hour * (hours - 1)
        one_day = ends_within_day(breach.first_at, end)
        peak_at = format_time(breach.highest_peak_at) if one_day else self.at(breach.highest_peak_at)
        if consecutive:
            when = f"for {_counted(hours, 'hour')} {self.span(breach.first_at, end)}"
        elif one_day:
            when = (
                f"in {hours} hours on {format_day(breach.first_at)}, between {format_time(breach.first_at)} and "
                f"{_until(end)}"
            )
        else:
            when = f"in {hours} hours between {self.at(breach.first_at)} and {self.at(end)}"
        raised = ""
        if alerts:
            first, last = alerts[0].raised_at, alerts[-1].raised_at
            same_day = first.date() == last.date() == breach.first_at.date()
            if len(alerts) == 1:
                raised = f"; an alert was raised at {format_time(first) if same_day else self.at(first)}"
            elif same_day:
                raised = f"; {len(alerts)} alerts were raised from {format_time(first)} to {format_time(last)}"
            else:
                raised = f"; {len(alerts)} alerts were raised from {self.at(first)} to {self.at(last)}"
            raised += f", {_acknowledged(alerts)}"
        return _Draft(
            kind="breach",
            importance=max(80.0 + min(hours, 10), _alerts_importance(alerts)),
            sentence=f"{name} was over its threshold of {format_people(breach.threshold)} people {when}, with a "
            f"highest peak of {format_people(breach.highest_peak)} at {peak_at}{raised}.",
            camera=breach.camera,
            zone=breach.zone,
            start=breach.first_at,
            end=end,
            value=breach.highest_peak,
            reference=breach.threshold,
            percent=breach.percent_over,
        )

    def silent(self, camera: str, start: datetime, end: datetime, hours: int) -> _Draft:
        return _Draft(
            kind="outage",
            importance=75.0 + min(hours, 10),
            sentence=f"{camera} sent no counts for {_counted(hours, 'hour')} {self.span(start, end)}, hours in "
            "which it usually counts.",
            camera=camera,
            start=start,
            end=end,
        )

    def reported_down(self, outage: Outage, start: datetime, end: datetime | None) -> _Draft:
        hours = ((end or self.facts.period_end) - start) / timedelta(hours=1)
        if end is not None and ends_within_day(start, end):
            when = f"from {format_time(start)} to {_until(end)} on {format_day(start)}"
        else:
            when = self.span(start, end)
        return _Draft(
            kind="outage",
            importance=75.0 + min(hours, 10),
            sentence=f"{outage.camera} was reported down {when}.",
            camera=outage.camera,
            start=start,
            end=end,
        )

    def unusual_hour(self, key: EntityKey, at: datetime, value: float, usual: float) -> _Draft:
        percent, difference = _against_usual(value, usual)
        return _Draft(
            kind="unusual_hour",
            importance=60.0 + min(abs(percent or 200.0) / 20, 10),
            sentence=f"At {self.at(at)}, {entity_name(key)} averaged {format_people(value)} people, {difference} "
            f"its usual {format_people(usual)} for that hour and weekday.",
            camera=key[0],
            zone=key[1],
            start=at,
            end=at + self.hour,
            value=value,
            reference=usual,
            percent=percent,
        )

    def unusual_day(self, camera: str, day: datetime, value: float, usual: float) -> _Draft:
        percent, difference = _against_usual(value, usual)
        return _Draft(
            kind="unusual_day",
            importance=70.0,
            sentence=f"{camera} averaged {format_people(value)} people on {format_day(day)}, {difference} its usual "
            f"{format_people(usual)} for a {WEEKDAY_NAMES[day.weekday()]}.",
            camera=camera,
            start=day,
            end=day + timedelta(days=1),
            value=value,
            reference=usual,
            percent=percent,
        )

    def week_change(self, series: SeriesFacts) -> _Draft | None:
        change = series.week_change
        if change.percent is None or change.current is None or change.previous is None:
            return None
        if round_shown(change.percent) == 0:
            return None
        notable = (
            abs(change.percent) >= NOTABLE_WEEK_CHANGE_PERCENT
            and abs(change.current - change.previous) >= UNUSUAL_DAY_MIN_PEOPLE
        )
        span = "day" if self.one_day else "period"
        direction = "higher" if change.percent > 0 else "lower"
        return _Draft(
            kind="week_change",
            importance=(55.0 if notable else 15.0) + min(abs(change.percent) / 50, 4),
            sentence=f"{entity_name(series.key)} averaged {format_people(change.current)} people, "
            f"{format_percent(change.percent)} {direction} than the same {span} a week earlier "
            f"({format_people(change.previous)} people).",
            camera=series.camera,
            zone=series.zone,
            value=change.current,
            reference=change.previous,
            percent=change.percent,
        )

    def busiest_hour(self, site: str, start: datetime, total: float, cameras: int) -> _Draft:
        # "between them": the cameras' hourly means added, never read as one camera's average.
        averaging = (
            f"its camera averaging {format_people(total)} people"
            if cameras == 1
            else (f"its {cameras} cameras averaging {format_people(total)} people between them")
        )
        return _Draft(
            kind="busiest_hour",
            importance=40.0,
            sentence=f"At {site}, the busiest hour was {format_time(start)} to {_until(start + self.hour)} on "
            f"{format_day(start)}, with {averaging}.",
            site=site,
            start=start,
            end=start + self.hour,
            value=total,
        )

    def ranking(self, facts: Facts, kind: Literal["camera", "zone"]) -> _Draft | None:
        ranked = [(camera, None) for camera in facts.busiest_cameras] if kind == "camera" else facts.busiest_zones
        if len(ranked) < 2:
            return None
        listed = [
            f"{entity_name(key)} ({format_people(_ranked_mean(facts, key))} people)" for key in ranked[:RANKING_LENGTH]
        ]
        followers = listed[1] if len(listed) == 2 else f"{', '.join(listed[1:-1])} and {listed[-1]}"
        top = _ranked_mean(facts, ranked[0])
        return _Draft(
            kind="ranking",
            importance=35.0 if kind == "camera" else 25.0,
            sentence=f"By average count, {entity_name(ranked[0])} was the busiest {kind} "
            f"({format_people(top)} people), followed by {followers}.",
            value=top,
        )

    def level(self, series: SeriesFacts) -> _Draft:
        name = entity_name(series.key)
        # A period with counts has its peak too (SeriesFacts).
        if series.mean is None or series.peak is None or series.peak_at is None:
            return _Draft(
                kind="level",
                importance=30.0,
                sentence=f"{name} had no counts in this period.",
                camera=series.camera,
                zone=series.zone,
            )
        return _Draft(
            kind="level",
            importance=20.0 if series.zone is None else 10.0,
            sentence=f"{name} averaged {format_people(series.mean)} people and peaked at {format_people(series.peak)} "
            f"at {self.at(series.peak_at)}.",
            camera=series.camera,
            zone=series.zone,
            start=series.peak_at,
            value=series.mean,
            reference=None,
        )


def _against_usual(value: float, usual: float) -> tuple[float | None, str]:
    """The value's signed percentage against its usual level, and the words for it ("75% below")."""
    percent = percent_change(value, usual)
    direction = "above" if value > usual else "below"
    return percent, f"{format_percent(percent)} {direction}" if percent is not None else direction


def _alerts_importance(alerts: list[AlertFact]) -> float:
    """An alert not acknowledged is the most important thing a report tells; an acknowledged one comes next."""
    if not alerts:
        return 0.0
    return 100.0 if any(not alert.acknowledged for alert in alerts) else 90.0


def _acknowledged(alerts: list[AlertFact]) -> str:
    unacknowledged = sum(not alert.acknowledged for alert in alerts)
    if len(alerts) == 1:
        return "not acknowledged" if unacknowledged else "acknowledged"
    if unacknowledged in (0, len(alerts)):
        return "all acknowledged" if unacknowledged == 0 else "none acknowledged"
    return f"{unacknowledged} not acknowledged"


def _until(end: datetime) -> str:
    """The end of a span within one day: the midnight that ends it reads "24:00", not "00:00"."""
    return "24:00" if (end.hour, end.minute) == (0, 0) else format_time(end)


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _camera_series(history: History) -> list[Series]:
    return [series for series in history.series if series.zone is None]


def _bucket_starts(history: History) -> list[datetime]:
    """The period's bucket starts (UTC) up to the newest count in the history: later hours may simply not have
    arrived yet, so they are never called silent."""
    newest = max((bucket.start for series in history.series for bucket in series.buckets), default=None)
    if newest is None:
        return []
    step = timedelta(minutes=history.bucket_minutes)
    start, end = history.period_start.astimezone(UTC), min(history.period_end.astimezone(UTC), newest + step)
    starts = []
    while start < end:
        starts.append(start)
        start += step
    return starts


def _outages(history: History, teller: _Teller) -> list[_Draft]:
    """Outages reported in the history, and runs of hours in which a camera that usually counts sent nothing."""
    zone_info = teller.zone_info
    period_start, period_end = history.period_start.astimezone(UTC), history.period_end.astimezone(UTC)
    drafts: list[_Draft] = []
    reported: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for outage in history.outages:
        start, end = outage.start.astimezone(UTC), outage.end.astimezone(UTC) if outage.end else None
        if start >= period_end or (end is not None and end <= period_start):
            continue
        shown_start = max(start, period_start).astimezone(zone_info)
        shown_end = end.astimezone(zone_info) if end is not None and end < period_end else None
        drafts.append(teller.reported_down(outage, shown_start, shown_end))
        reported[outage.camera].append((start, end or datetime.max.replace(tzinfo=UTC)))

    starts = _bucket_starts(history)
    step = timedelta(minutes=history.bucket_minutes)
    for series in _camera_series(history):
        counted = {bucket.start.astimezone(UTC) for bucket in series.buckets}
        earlier_days: dict[tuple[int, int], set[date]] = defaultdict(set)
        for moment in counted:
            if moment < period_start:
                earlier_days[_weekday_hour(moment, zone_info)].add(moment.astimezone(zone_info).date())

        usual = {slot for slot, days in earlier_days.items() if len(days) >= USUAL_MIN_EARLIER_DAYS}
        covered = reported[series.camera]
        silent = {
            moment
            for moment in starts
            if moment not in counted
            and _weekday_hour(moment, zone_info) in usual
            and not any(start <= moment < end for start, end in covered)
        }
        run: list[datetime] = []
        for hour_start in [*starts, None]:  # None: the end, where a run still open is told
            if hour_start is not None and hour_start in silent:
                run.append(hour_start)
                continue
            if len(run) >= SILENT_MIN_HOURS:
                start, end = run[0].astimezone(zone_info), (run[-1] + step).astimezone(zone_info)
                drafts.append(teller.silent(series.camera, start, end, len(run)))
            run = []
    return drafts


def _weekday_hour(moment: datetime, zone_info: ZoneInfo) -> tuple[int, int]:
    local = moment.astimezone(zone_info)
    return local.weekday(), local.hour


def _local_days(history: History, zone_info: ZoneInfo) -> list[datetime]:
    """Local midnights of the whole days inside the period."""
    start = history.period_start.astimezone(zone_info)
    day = datetime.combine(start.date(), datetime.min.time(), zone_info)
    if day < start:
        day = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), zone_info)
    days = []
    while datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), zone_info) <= history.period_end:
        days.append(day)
        day = datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), zone_info)
    return days


def _unusual_days(series: Series, history: History, teller: _Teller) -> list[_Draft]:
    """Whole days of the period whose mean is far from the median mean of the same weekday in the weeks before."""
    zone_info = teller.zone_info
    daily: dict[date, list[float]] = defaultdict(list)
    for bucket in series.buckets:
        daily[bucket.start.astimezone(zone_info).date()].append(bucket.mean)
    first_day = history.period_start.astimezone(zone_info).date()
    drafts = []
    for day in _local_days(history, zone_info):
        if not daily.get(day.date()):
            continue  # a day without counts is an outage, told as one
        earlier = [
            statistics.fmean(means)
            for earlier_day, means in daily.items()
            if earlier_day < first_day and earlier_day.weekday() == day.weekday()
        ]
        if len(earlier) < USUAL_MIN_EARLIER_DAYS:
            continue
        value, usual = statistics.fmean(daily[day.date()]), statistics.median(earlier)
        if abs(value - usual) > max(UNUSUAL_DAY_RELATIVE_MARGIN * usual, UNUSUAL_DAY_MIN_PEOPLE):
            drafts.append(teller.unusual_day(series.camera, day, value, usual))
    return drafts


def _unusual_hours(facts: Facts, teller: _Teller, unusual_days: list[_Draft]) -> list[_Draft]:
    """The facts' unusual hours, less those an unusual day of the same camera and direction already tells."""
    told_days = {
        (draft.camera, draft.start.date(), (draft.value or 0) > (draft.reference or 0))
        for draft in unusual_days
        if draft.start is not None
    }
    return [
        teller.unusual_hour(unusual.key, unusual.at, unusual.value, unusual.usual)
        for unusual in facts.unusual
        if (unusual.camera, unusual.at.date(), unusual.direction == "above") not in told_days
    ]


def _busiest_hours(history: History, teller: _Teller) -> list[_Draft]:
    """Each site's hour with the most people across its cameras (the sum of their hourly means)."""
    period_start, period_end = history.period_start.astimezone(UTC), history.period_end.astimezone(UTC)
    cameras_by_site: dict[str, set[str]] = defaultdict(set)
    for camera, site in history.sites.items():
        cameras_by_site[site].add(camera)
    drafts = []
    for site, cameras in sorted(cameras_by_site.items()):
        totals: dict[datetime, float] = defaultdict(float)
        for series in _camera_series(history):
            if series.camera in cameras:
                for bucket in series.buckets:
                    start = bucket.start.astimezone(UTC)
                    if period_start <= start < period_end:
                        totals[start] += bucket.mean
        if totals:
            start = min(totals, key=lambda moment: (-totals[moment], moment))
            drafts.append(teller.busiest_hour(site, start.astimezone(teller.zone_info), totals[start], len(cameras)))
    return drafts
