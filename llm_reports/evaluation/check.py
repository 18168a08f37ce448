"""An independent check of report sentences against the raw counts, written for the benchmark.

It shares no code with the product's facts and events: each sentence is parsed with this module's own patterns into
its subject (a camera, a camera's zone, a site), its times (a moment, an hour, a span, a day) and its quantities
with their units (people, %, hours or minutes) and direction words, and every one of them is recomputed from the
history's buckets, alerts and outages. A sentence of no known shape, or one stating something the history cannot
decide, is untrue (and marked unchecked).

Definitions, since a sentence's truth depends on them:
- a series' mean over a span is the mean of its bucket means in that span; an hour without a bucket has no count;
- its usual level for an hour is the median of its bucket means at the same local weekday and hour before the
  period; for a day, the median of its daily means on the same weekday before the period;
- a camera usually counts at an hour when it has a bucket at that local weekday and hour on at least half of the
  earlier same weekdays the history covers;
- a site's busiest hour is the period's hour with the highest sum of its cameras' bucket means.

Tolerance: a told number matches a recomputed value within half a unit of its last shown digit ("148" covers 147.5
to 148.5, "3.4" covers 3.35 to 3.45): the product rounds people and percentages for display, never its sums.
Percentages are recomputed from the unrounded values.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from llm_reports.evaluation.scenarios import Planted
from llm_reports.history import AlertRecord, Bucket, History

Key = tuple[str, str | None]

NUMBER = r"\d[\d,]*(?:\.\d+)?"
DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
TIME = r"\d{2}:\d{2}"  # "24:00" ends a span at midnight
DURATION = r"(?P<amount>\d+) (?P<unit>hours?|minutes?)"
GROUP_STATE = r"all acknowledged|none acknowledged|\d+ not acknowledged"
DIFFERENCE = rf"(?:(?P<difference>{NUMBER})(?P<difference_unit>%| people) )?"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

SHAPES: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "alert": rf"An alert was raised for (?P<subject>.+?) at (?P<first>{TIME}) on (?P<first_day>{DAY}): "
        rf"(?P<count>{NUMBER}) people against a threshold of (?P<threshold>{NUMBER}), "
        r"(?P<state>acknowledged|not acknowledged)\.",
        "alerts": rf"(?P<alerts>\d+) alerts were raised for (?P<subject>.+?) (?P<raised>(?:on|from) .+), the "
        rf"highest at (?P<highest>{TIME})(?: on (?P<highest_day>{DAY}))?: (?P<count>{NUMBER}) people against a "
        rf"threshold of (?P<threshold>{NUMBER}); (?P<state>{GROUP_STATE})\.",
        "breach": rf"(?P<subject>.+?) was over its threshold of (?P<threshold>{NUMBER}) people (?P<mode>for|in) "
        rf"{DURATION} (?P<span>.+), with a highest peak of (?P<peak>{NUMBER}) at (?P<peak_time>{TIME})"
        rf"(?: on (?P<peak_day>{DAY}))?(?:; (?P<alert_tail>.+))?\.",
        "silent": rf"(?P<subject>.+?) sent no counts for {DURATION} (?P<span>.+), hours in which it usually counts\.",
        "reported_down": r"(?P<subject>.+?) was reported down (?P<span>.+)\.",
        "hour": rf"At (?P<time>{TIME}) on (?P<day>{DAY}), (?P<subject>.+?) averaged (?P<value>{NUMBER}) people, "
        rf"{DIFFERENCE}(?P<direction>above|below) its usual (?P<usual>{NUMBER}) for that hour and weekday\.",
        "busiest_hour": rf"At (?P<site>.+?), the busiest hour was (?P<start>{TIME}) to (?P<end>{TIME}) on "
        rf"(?P<day>{DAY}), with its (?:(?P<cameras>\d+) cameras|camera) averaging (?P<value>{NUMBER}) people"
        r"(?: between them)?\.",
        "ranking": rf"By average count, (?P<first>.+?) was the busiest (?P<kind>camera|zone) "
        rf"\((?P<value>{NUMBER}) people\), followed by (?P<rest>.+)\.",
        "day": rf"(?P<subject>.+?) averaged (?P<value>{NUMBER}) people on (?P<day>{DAY}), "
        rf"{DIFFERENCE}(?P<direction>above|below) its usual (?P<usual>{NUMBER}) for an? (?P<weekday>[A-Z][a-z]+)\.",
        "week": rf"(?P<subject>.+?) averaged (?P<value>{NUMBER}) people, {DIFFERENCE}(?P<direction>higher|lower) "
        rf"than the same (?P<window>day|week|period) a week earlier \((?P<earlier>{NUMBER}) people\)\.",
        "level": rf"(?P<subject>.+?) averaged (?P<value>{NUMBER}) people and peaked at (?P<peak>{NUMBER}) at "
        rf"(?P<time>{TIME}) on (?P<day>{DAY})\.",
        "no_counts": r"(?P<subject>.+?) had no counts in this period\.",
    }.items()
}
"""The sentence shapes the checker reads, tried in this order; a sentence must match one whole."""
RANKED_ENTRY = re.compile(rf"(?P<name>.+?) \((?P<value>{NUMBER}) people\)(?:, | and |$)")
RAISED = [
    # When a run of a subject's alerts was raised, in a sentence of their own: "on Thu 15 Oct, from 08:10 to 08:40".
    re.compile(rf"on (?P<first_day>{DAY}), from (?P<first>{TIME}) to (?P<last>{TIME})"),
    re.compile(rf"from (?P<first>{TIME}) on (?P<first_day>{DAY}) to (?P<last>{TIME}) on (?P<last_day>{DAY})"),
]
ALERT_TAILS = [
    # A subject's alerts told after its hours over the threshold: "an alert was raised at 17:25, acknowledged".
    re.compile(
        rf"an alert was raised at (?P<first>{TIME})(?: on (?P<first_day>{DAY}))?, "
        r"(?P<state>acknowledged|not acknowledged)"
    ),
    re.compile(
        rf"(?P<alerts>\d+) alerts were raised from (?P<first>{TIME})(?: on (?P<first_day>{DAY}))? to (?P<last>{TIME})"
        rf"(?: on (?P<last_day>{DAY}))?, (?P<state>{GROUP_STATE})"
    ),
]
SPANS = [
    re.compile(rf"on (?P<day>{DAY}), (?:from|between) (?P<start>{TIME}) (?:to|and) (?P<end>{TIME})"),
    re.compile(rf"from (?P<start>{TIME}) to (?P<end>{TIME}) on (?P<day>{DAY})"),
    re.compile(
        rf"(?:from|between) (?P<start>{TIME}) on (?P<day>{DAY}) (?:to|and) (?P<end>{TIME}) on (?P<end_day>{DAY})"
    ),
    re.compile(rf"from (?P<start>{TIME}) on (?P<day>{DAY}) to (?P<open>the end of the period)"),
]


@dataclass(frozen=True)
class Verdict:
    sentence: str
    true: bool
    unchecked: bool  # the checker could not read or decide it: counted untrue all the same
    reason: str  # why it is untrue; empty when true


@dataclass(frozen=True)
class _Parsed:
    shape: str  # a key of SHAPES
    fields: Fields


class _Problem(Exception):
    """What makes a sentence untrue; `unchecked` when the history cannot decide it rather than contradicts it."""

    def __init__(self, reason: str, unchecked: bool = False) -> None:
        super().__init__(reason)
        self.unchecked = unchecked


class Fields(dict[str, str | None]):
    """A sentence's parts, by the names of its shape's groups, as written; None for a group the sentence left out."""

    def required(self, name: str) -> str:
        """The part `name`, which the sentence's shape always holds (the checker cannot read it otherwise)."""
        value = self[name]
        if value is None:
            raise _Problem(f"the sentence tells no {name}", unchecked=True)
        return value


def _parse(sentence: str) -> _Parsed | None:
    """The first shape the whole sentence matches, with its fields; None when none does."""
    for shape, pattern in SHAPES.items():
        if match := pattern.fullmatch(sentence.strip()):
            return _Parsed(shape, Fields(match.groupdict()))
    return None


def _subject_names(camera: str, zone: str | None) -> set[str]:
    """The ways a sentence may name a camera, or a zone with its camera ("Harbour steps' Ferry queue zone")."""
    if zone is None:
        return {camera}
    possessives = ["'s", "'"] if camera.endswith("s") else ["'s"]
    return {f"{camera}{possessive} {zone}{suffix}" for possessive in possessives for suffix in ("", " zone")}


class _Clock:
    """Local days and times as sentences write them ("18:00", "Sat 17 Oct"): without a year, so a day is resolved to
    the date nearest `near` whose weekday matches."""

    def __init__(self, zone: tzinfo, near: date) -> None:
        self.zone = zone
        self.near = near

    def day(self, text: str) -> date:
        weekday, number, month = text.split()
        candidates = []
        for year in (self.near.year - 1, self.near.year, self.near.year + 1):
            try:
                candidates.append(date(year, MONTHS.index(month) + 1, int(number)))
            except ValueError:
                continue
        matching = [day for day in candidates if WEEKDAYS[day.weekday()].startswith(weekday)]
        if not matching:
            raise _Problem(f"no {text} near {self.near.isoformat()}: the weekday does not match the date")
        return min(matching, key=lambda day: abs(day - self.near))

    def moment(self, day: str | date, clock_time: str) -> datetime:
        hour, minute = (int(part) for part in clock_time.split(":"))
        on = self.day(day) if isinstance(day, str) else day
        if (hour, minute) == (24, 0):
            return datetime.combine(on + timedelta(days=1), time(), self.zone)
        if hour > 23 or minute > 59:
            raise _Problem(f"{clock_time} is not a time of day")
        return datetime.combine(on, time(hour, minute), self.zone)

    def raised(self, fields: Fields, default_day: date | None = None) -> tuple[datetime, datetime]:
        """The minutes the first and the last of a run of alerts were raised (the same for one alert), from the
        groups first[_day] and last[_day]; a day left out is the first's, or `default_day`."""
        first_day = fields["first_day"] or default_day
        if first_day is None:
            raise _Problem("the sentence tells no day of the first alert", unchecked=True)
        first = self.moment(first_day, fields.required("first"))
        if not fields.get("last"):
            return first, first
        return first, self.moment(fields.get("last_day") or first.date(), fields.required("last"))

    def span(self, text: str) -> tuple[datetime, datetime | None]:
        """[start, end) of a span; end None: to the end of the period. An end at or before the start on the same
        day is the next day's ("from 22:00 to 00:00")."""
        fields = _fullmatch(SPANS, text)
        start = self.moment(fields.required("day"), fields.required("start"))
        if fields.get("open"):
            return start, None
        end = self.moment(fields.get("end_day") or fields.required("day"), fields.required("end"))
        if end <= start and not fields.get("end_day"):
            end = self.moment(start.date() + timedelta(days=1), fields.required("end"))
        if end <= start:
            raise _Problem(f"the span {text!r} ends before it starts")
        return start, end


def _fullmatch(patterns: list[re.Pattern[str]], text: str) -> Fields:
    for pattern in patterns:
        if match := pattern.fullmatch(text):
            return Fields(match.groupdict())
    raise _Problem(f"cannot read {text!r}", unchecked=True)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _matches_shown(told: str, actual: float) -> bool:
    """Whether `actual` rounds to `told` at `told`'s shown precision."""
    decimals = len(told.partition(".")[2])
    return abs(float(told.replace(",", "")) - actual) <= 0.5 * 10**-decimals + 1e-9


def _expect_people(what: str, told: str | None, actual: float) -> None:
    if told is not None and not _matches_shown(told, actual):
        raise _Problem(f"{what}: told {told} people, the counts give {actual:.2f}")


def _expect_difference(fields: Fields, value: float, reference: float, words: tuple[str, str]) -> None:
    """The direction word (`words`: the one for more, the one for less) and the told difference, in % of the
    reference or in people, of `value` against `reference`."""
    told_direction = fields["direction"]
    if value == reference:
        raise _Problem(f"told {told_direction!r}, but the two levels are equal ({value:.2f})")
    direction = words[0] if value > reference else words[1]
    if told_direction != direction:
        raise _Problem(f"told {told_direction!r}: {value:.2f} is {direction} {reference:.2f}")
    told = fields["difference"]
    if told is None:
        return
    if fields["difference_unit"] == "%":
        if reference == 0:
            raise _Problem("a percentage of a zero level")
        actual, unit = abs(value - reference) / reference * 100, "%"
    else:
        actual, unit = abs(value - reference), " people"
    if not _matches_shown(told, actual):
        raise _Problem(f"difference: told {told}{unit}, the counts give {actual:.2f}{unit}")


def _hours(amount: str, unit: str) -> float:
    return int(amount) / (60 if unit.startswith("minute") else 1)


class Checker:
    """Decides the sentences of reports on one history."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.zone = ZoneInfo(history.timezone)
        self.step = timedelta(minutes=history.bucket_minutes)
        self.period_start = history.period_start.astimezone(UTC)
        self.period_end = history.period_end.astimezone(UTC)
        self.clock = _Clock(self.zone, self.period_start.astimezone(self.zone).date())
        self.thresholds = {(series.camera, series.zone): series.threshold for series in history.series}
        self.buckets: dict[Key, dict[datetime, Bucket]] = {
            (series.camera, series.zone): {bucket.start.astimezone(UTC): bucket for bucket in series.buckets}
            for series in history.series
        }
        self.first_counted = min(start for buckets in self.buckets.values() for start in buckets).astimezone(self.zone)
        self.checks = {
            "alert": self._alert,
            "alerts": self._alerts,
            "breach": self._breach,
            "silent": self._silent,
            "reported_down": self._reported_down,
            "hour": self._hour,
            "busiest_hour": self._busiest_hour,
            "ranking": self._ranking,
            "day": self._day,
            "week": self._week,
            "level": self._level,
            "no_counts": self._no_counts,
        }

    def check(self, sentence: str) -> Verdict:
        parsed = _parse(sentence)
        if parsed is None:
            return Verdict(sentence, False, True, "no sentence shape the checker knows")
        try:
            self.checks[parsed.shape](parsed.fields)
        except _Problem as problem:
            return Verdict(sentence, False, problem.unchecked, f"{parsed.shape}: {problem}")
        return Verdict(sentence, True, False, "")

    # Reading the history.

    def _subject(self, text: str) -> Key:
        for key in self.buckets:
            if text in _subject_names(*key):
                return key
        raise _Problem(f"no camera or zone is called {text!r}")

    def _between(self, key: Key, start: datetime, end: datetime) -> list[Bucket]:
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        return [bucket for moment, bucket in self.buckets[key].items() if start <= moment < end]

    def _starts(self, start: datetime, end: datetime) -> list[datetime]:
        """The bucket starts (UTC) of [start, end)."""
        moment, end = start.astimezone(UTC), end.astimezone(UTC)
        starts = []
        while moment < end:
            starts.append(moment)
            moment += self.step
        return starts

    def _local_day(self, day: date) -> tuple[datetime, datetime]:
        return datetime.combine(day, time(), self.zone), datetime.combine(day + timedelta(days=1), time(), self.zone)

    def _earlier(self, key: Key) -> dict[datetime, Bucket]:
        return {moment: bucket for moment, bucket in self.buckets[key].items() if moment < self.period_start}

    def _usual_at(self, key: Key, moment: datetime) -> float:
        local = moment.astimezone(self.zone)
        slot = (local.weekday(), local.hour, local.minute)
        same_slot = []
        for earlier, bucket in self._earlier(key).items():
            earlier_local = earlier.astimezone(self.zone)
            if (earlier_local.weekday(), earlier_local.hour, earlier_local.minute) == slot:
                same_slot.append(bucket.mean)
        if not same_slot:
            raise _Problem(f"no earlier count at {local:%H:%M} on a {WEEKDAYS[local.weekday()]}", unchecked=True)
        return statistics.median(same_slot)

    def _earlier_same_weekdays(self, day: date) -> list[date]:
        """The days of `day`'s weekday from the history's first count to the day before the period."""
        first, period_day = self.first_counted.date(), self.period_start.astimezone(self.zone).date()
        days = (first + timedelta(days=offset) for offset in range((period_day - first).days))
        return [earlier for earlier in days if earlier.weekday() == day.weekday()]

    def _usually_counts(self, camera: Key, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        days = self._earlier_same_weekdays(local.date())
        counted = sum(
            datetime.combine(day, local.time(), self.zone).astimezone(UTC) in self.buckets[camera] for day in days
        )
        return bool(days) and counted * 2 >= len(days)

    def _mean(self, key: Key, start: datetime, end: datetime, what: str) -> float:
        buckets = self._between(key, start, end)
        if not buckets:
            raise _Problem(f"{what}: no counts from {start:%H:%M on %d %b} to {end:%H:%M on %d %b}", unchecked=True)
        return statistics.fmean(bucket.mean for bucket in buckets)

    def _period_mean(self, key: Key) -> float:
        return self._mean(key, self.period_start, self.period_end, "the period")

    # One method per shape: each raises _Problem at the first thing the history contradicts or cannot decide.

    def _alert_run(self, key: Key, fields: Fields, default_day: date | None = None) -> list[AlertRecord]:
        """The subject's alerts raised from the told first to the told last minute, checked against the told number
        of alerts (one when not told), their first and last minutes and how many were acknowledged."""
        first, last = self.clock.raised(fields, default_day)
        alerts = sorted(
            (
                alert
                for alert in self.history.alerts
                if (alert.camera, alert.zone) == key and first <= _minute(alert.raised_at) <= last
            ),
            key=lambda alert: alert.raised_at,
        )
        told = int(fields.get("alerts") or 1)
        if len(alerts) != told:
            raise _Problem(
                f"{len(alerts)} alerts raised from {first:%H:%M on %d %b} to {last:%H:%M on %d %b}, told {told}"
            )
        if _minute(alerts[0].raised_at) != first or _minute(alerts[-1].raised_at) != last:
            raise _Problem(f"no alert raised at {first:%H:%M on %d %b} or at {last:%H:%M on %d %b}")
        state, unacknowledged = fields.required("state"), sum(not alert.acknowledged for alert in alerts)
        told_unacknowledged = {"acknowledged": 0, "all acknowledged": 0, "not acknowledged": 1}.get(state)
        if state == "none acknowledged":
            told_unacknowledged = len(alerts)
        elif told_unacknowledged is None:  # "2 not acknowledged"
            told_unacknowledged = int(state.split()[0])
        if unacknowledged != told_unacknowledged:
            raise _Problem(f"{unacknowledged} of {len(alerts)} alerts not acknowledged, told {state!r}")
        return alerts

    def _alert(self, fields: Fields) -> None:
        (alert,) = self._alert_run(self._subject(fields.required("subject")), fields)
        _expect_people("the alert's count", fields["count"], alert.count)
        _expect_people("the alert's threshold", fields["threshold"], alert.threshold)

    def _alerts(self, fields: Fields) -> None:
        raised = Fields(_fullmatch(RAISED, fields.required("raised")), alerts=fields["alerts"], state=fields["state"])
        alerts = self._alert_run(self._subject(fields.required("subject")), raised)
        highest_at = self.clock.moment(
            fields["highest_day"] or alerts[0].raised_at.astimezone(self.zone).date(), fields.required("highest")
        )
        highest = max(alerts, key=lambda alert: alert.count)
        if not any(_minute(alert.raised_at) == highest_at and alert.count == highest.count for alert in alerts):
            raise _Problem(f"the highest alert ({highest.count:.2f} people) was not raised at {fields['highest']}")
        _expect_people("the highest alert's count", fields["count"], highest.count)
        _expect_people("its threshold", fields["threshold"], highest.threshold)

    def _breach(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        threshold = self.thresholds[key]
        if threshold is None:
            raise _Problem(f"{fields['subject']} has no threshold")
        _expect_people("threshold", fields["threshold"], threshold)
        start, end = self.clock.span(fields.required("span"))
        starts = self._starts(start, end or self.period_end)
        over = [moment for moment in starts if (b := self.buckets[key].get(moment)) and b.peak > threshold]
        told_hours = _hours(fields.required("amount"), fields.required("unit"))
        if fields["mode"] == "for":
            if len(starts) != told_hours:
                raise _Problem(f"the span lasts {len(starts)} hours, told {fields['amount']} {fields['unit']}")
            if over != starts:
                missing = next(moment for moment in starts if moment not in over).astimezone(self.zone)
                raise _Problem(f"not over its threshold at {missing:%H:%M on %d %b}")
        elif len(over) != told_hours:
            raise _Problem(f"over its threshold in {len(over)} hours of the span, told {fields['amount']}")
        peak_at = self.clock.moment(fields["peak_day"] or start.date(), fields.required("peak_time")).astimezone(UTC)
        if peak_at not in over:
            raise _Problem(f"not over its threshold at the told peak time {fields['peak_time']}")
        highest = max(self.buckets[key][moment].peak for moment in over)
        if self.buckets[key][peak_at].peak < highest:
            raise _Problem(f"the highest peak ({highest:.2f}) is not at {fields['peak_time']}")
        _expect_people("highest peak", fields["peak"], highest)
        if fields["alert_tail"]:
            self._alert_run(key, _fullmatch(ALERT_TAILS, fields["alert_tail"]), start.date())

    def _silent(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        start, end = self.clock.span(fields.required("span"))
        starts = self._starts(start, end or self.period_end)
        if len(starts) != _hours(fields.required("amount"), fields.required("unit")):
            raise _Problem(f"the span lasts {len(starts)} hours, told {fields['amount']} {fields['unit']}")
        for moment in starts:
            local = moment.astimezone(self.zone)
            if moment in self.buckets[key]:
                raise _Problem(f"it counted at {local:%H:%M on %d %b}")
            if not self._usually_counts(key, moment):
                raise _Problem(f"it does not usually count at {local:%H:%M} on a {WEEKDAYS[local.weekday()]}")

    def _reported_down(self, fields: Fields) -> None:
        camera, zone = self._subject(fields.required("subject"))
        start, end = self.clock.span(fields.required("span"))
        end = end or self.period_end
        covering = [
            outage
            for outage in self.history.outages
            if outage.camera == camera and outage.start <= start and (outage.end is None or outage.end >= end)
        ]
        if zone is not None or not covering:
            raise _Problem(f"no outage of {fields['subject']} reported over {fields['span']!r}")

    def _hour(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        at = self.clock.moment(fields.required("day"), fields.required("time"))
        bucket = self.buckets[key].get(at.astimezone(UTC))
        if bucket is None:
            raise _Problem(f"no count at {fields['time']} on {fields['day']}")
        usual = self._usual_at(key, at)
        _expect_people("the hour's mean", fields["value"], bucket.mean)
        _expect_people("the usual level", fields["usual"], usual)
        _expect_difference(fields, bucket.mean, usual, ("above", "below"))

    def _day(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        day = self.clock.day(fields.required("day"))
        if fields["weekday"] != WEEKDAYS[day.weekday()]:
            raise _Problem(f"{fields['day']} is a {WEEKDAYS[day.weekday()]}, told {fields['weekday']}")
        value = self._mean(key, *self._local_day(day), "the day")
        earlier_days = [
            self._mean(key, *self._local_day(earlier), "an earlier day")
            for earlier in self._earlier_same_weekdays(day)
            if self._between(key, *self._local_day(earlier))
        ]
        if not earlier_days:
            raise _Problem(f"no earlier {fields['weekday']} with counts", unchecked=True)
        usual = statistics.median(earlier_days)
        _expect_people("the day's mean", fields["value"], value)
        _expect_people("the usual level", fields["usual"], usual)
        _expect_difference(fields, value, usual, ("above", "below"))

    def _week(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        local_start, local_end = self.period_start.astimezone(self.zone), self.period_end.astimezone(self.zone)
        one_day = local_start.time() == time() and local_end == self._local_day(local_start.date())[1]
        one_week = local_start.time() == time() and local_end == datetime.combine(
            local_start.date() + timedelta(days=7), time(), self.zone
        )
        window = fields["window"]
        if (window == "day" and not one_day) or (window == "week" and not one_week):
            raise _Problem(f"the period is not one {window}")
        value = self._period_mean(key)
        # Wall-clock weeks: the same local hours seven days earlier, whatever the UTC offset then.
        week = timedelta(days=7)
        earlier_start = datetime.combine(local_start.date() - week, local_start.time(), self.zone)
        earlier_end = datetime.combine(local_end.date() - week, local_end.time(), self.zone)
        earlier = self._mean(key, earlier_start, earlier_end, "a week earlier")
        _expect_people("the period's mean", fields["value"], value)
        _expect_people("the mean a week earlier", fields["earlier"], earlier)
        _expect_difference(fields, value, earlier, ("higher", "lower"))

    def _busiest_hour(self, fields: Fields) -> None:
        cameras = sorted(camera for camera, site in self.history.sites.items() if site == fields["site"])
        if not cameras:
            raise _Problem(f"no site is called {fields['site']!r}")
        told_cameras = int(fields["cameras"] or 1)
        if told_cameras != len(cameras):
            raise _Problem(f"{fields['site']} has {len(cameras)} cameras, told {told_cameras}")
        start = self.clock.moment(fields.required("day"), fields.required("start"))
        end = self.clock.moment(start.date(), fields.required("end"))
        if end <= start:  # "23:00 to 00:00": the end is the next day's
            end = self.clock.moment(start.date() + timedelta(days=1), fields.required("end"))
        if end - start != self.step:
            raise _Problem(f"{fields['start']} to {fields['end']} is not one bucket")
        totals: dict[datetime, float] = {}
        for camera in cameras:
            for moment, bucket in self.buckets[(camera, None)].items():
                if self.period_start <= moment < self.period_end:
                    totals[moment] = totals.get(moment, 0.0) + bucket.mean
        told_total = totals.get(start.astimezone(UTC))
        if told_total is None:
            raise _Problem(f"no counts at {fields['start']} on {fields['day']}")
        busiest = max(totals.values())
        if told_total < busiest:
            busiest_at = max(totals, key=totals.__getitem__).astimezone(self.zone)
            raise _Problem(f"the busiest hour is {busiest_at:%H:%M} ({busiest:.2f} people), not {fields['start']}")
        _expect_people("the hour's total", fields["value"], told_total)

    def _ranking(self, fields: Fields) -> None:
        entries = [(fields.required("first"), fields["value"])]
        rest = list(RANKED_ENTRY.finditer(fields.required("rest")))
        if "".join(entry.group(0) for entry in rest) != fields["rest"]:
            raise _Problem(f"cannot read the ranked list {fields['rest']!r}", unchecked=True)
        entries += [(entry["name"], entry["value"]) for entry in rest]
        of_zones = fields["kind"] == "zone"
        ranked = sorted(
            (
                self._period_mean(key)
                for key in self.buckets
                if (key[1] is not None) == of_zones
                and any(self.period_start <= moment < self.period_end for moment in self.buckets[key])
            ),
            reverse=True,
        )
        for place, (name, told) in enumerate(entries):
            key = self._subject(name)
            if (key[1] is not None) != of_zones:
                raise _Problem(f"{name} is not a {fields['kind']}")
            mean = self._period_mean(key)
            _expect_people(f"{name}'s mean", told, mean)
            if place >= len(ranked) or abs(mean - ranked[place]) > 1e-9:
                raise _Problem(f"{name} is not number {place + 1} by mean")

    def _level(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        buckets = self._between(key, self.period_start, self.period_end)
        if not buckets:
            raise _Problem("no counts in the period")
        _expect_people("the period's mean", fields["value"], statistics.fmean(bucket.mean for bucket in buckets))
        highest = max(bucket.peak for bucket in buckets)
        at = self.clock.moment(fields.required("day"), fields.required("time")).astimezone(UTC)
        bucket = self.buckets[key].get(at)
        if bucket is None or not self.period_start <= at < self.period_end or bucket.peak < highest:
            raise _Problem(f"the period's highest peak ({highest:.2f}) is not at {fields['time']} on {fields['day']}")
        _expect_people("the period's peak", fields["peak"], highest)

    def _no_counts(self, fields: Fields) -> None:
        key = self._subject(fields.required("subject"))
        if self._between(key, self.period_start, self.period_end):
            raise _Problem("it has counts in the period")


def names_event(planted: Planted, sentences: Iterable[str]) -> bool:
    """Whether some sentence tells the planted event: its subject, its time and its kind (a spike: the hour "above"
    its usual; an outage: "no counts" or "reported down" over a span covering it; a quiet day: that day "below" its
    usual; a week surge: "higher than the same" day a week earlier; a zone over its threshold: "over its threshold"
    over a span covering the planted hours; an alert: "An alert was raised for" it at its minute, or a run of its
    alerts, alone or after its hours over the threshold, from the first to the last covering that minute). Truth is
    the checker's business: this only says whether the event is named."""
    if planted.start.tzinfo is None:
        raise ValueError("a planted event is timed on its site's clock: its start needs a time zone")
    clock = _Clock(planted.start.tzinfo, planted.start.date())
    names = _subject_names(planted.camera, planted.zone)
    for sentence in sentences:
        parsed = _parse(sentence)
        if parsed is None or parsed.fields.get("subject") not in names:
            continue
        try:
            if _tells(planted, parsed, clock):
                return True
        except _Problem:
            continue
    return False


def _tells(planted: Planted, parsed: _Parsed, clock: _Clock) -> bool:
    fields = parsed.fields

    def covers() -> bool:
        start, end = clock.span(fields.required("span"))
        return start <= planted.start and (end is None or (planted.end is not None and planted.end <= end))

    match planted.kind:
        case "spike":
            return (
                parsed.shape == "hour"
                and fields["direction"] == "above"
                and clock.moment(fields.required("day"), fields.required("time")) == planted.start
            )
        case "outage":
            return parsed.shape in ("silent", "reported_down") and covers()
        case "quiet_day":
            return (
                parsed.shape == "day"
                and fields["direction"] == "below"
                and clock.day(fields.required("day")) == planted.start.date()
            )
        case "week_surge":
            return parsed.shape == "week" and fields["direction"] == "higher"
        case "zone_over_threshold":
            return parsed.shape == "breach" and covers()
        case "alert":
            # An alert is told alone, with the subject's other alerts, or after the subject's hours over its threshold.
            if parsed.shape == "alert":
                first, last = clock.raised(fields)
            elif parsed.shape == "alerts":
                first, last = clock.raised(_fullmatch(RAISED, fields.required("raised")))
            elif parsed.shape == "breach" and fields["alert_tail"]:
                first, last = clock.raised(
                    _fullmatch(ALERT_TAILS, fields.required("alert_tail")),
                    clock.span(fields.required("span"))[0].date(),
                )
            else:
                return False
            return first <= _minute(planted.start) <= last
    return False
