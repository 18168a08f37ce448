"""Check a generated narrative sentence by sentence against the computed facts, and mend what does not match.

The model writes fluent sentences with wrong numbers, so nothing it writes reaches an operator unchecked. Each
sentence's numbers, clock times, days and camera/zone names are extracted and compared with the facts:

- a number must equal a fact value once rounded the way people see it (`round_shown`; no other tolerance), and it
  must be a fact about the camera or zone the sentence is talking about at that point (the nearest name before the
  number, else the first after it, else the entity of an earlier sentence that "it"/"its" refers back to), or a
  period-wide fact (the overall mean, the number of cameras, alerts, ...);
- a percentage must be a fact's percentage, in the direction the sentence says (higher/lower), and of the kind it
  names (day, week, usual level, threshold) when it names one;
- a clock time must be a time of that entity's facts (peak, breach, unusual value, alert), on the day the sentence
  names if it names one; the end of a range ("14:00 to 15:00") may also be the end of such a bucket;
- a day or weekday must be one of the period's days or of the two windows it is compared with;
- a name must be a known camera, zone or site: "camera X", "zone X" and "the X camera" with an unknown X fail, and
  "X was the busiest camera" fails unless X ranks first.

Numbers inside names ("Gate 2") are part of the name. A sentence with nothing to check passes. A failing sentence is
re-asked through a callback when one is given, and otherwise (or when every answer still fails) replaced by a plain
sentence built from the facts about the same entity; plain sentences always pass (a test holds that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from llm_reports.facts import (
    MONTH_NAMES,
    WEEK,
    WEEKDAY_NAMES,
    EntityKey,
    Facts,
    SeriesFacts,
    format_day,
    format_people,
    format_percent,
    format_time,
    round_shown,
)

Action = Literal["kept", "regenerated", "replaced"]
PercentKind = Literal["day", "week", "usual", "threshold"]


@dataclass(frozen=True)
class Attempt:
    """One answer of the regenerate callback that still failed, and why."""

    text: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SentenceOutcome:
    """What happened to one sentence of the narrative."""

    original: str
    final: str  # "" when it was dropped: every plain sentence about its entity was already in the text
    action: Action
    reasons: tuple[str, ...]  # why the original failed; empty when kept
    attempts: tuple[Attempt, ...] = ()  # failed regenerations, in order


@dataclass(frozen=True)
class Verification:
    """The verified narrative and the fate of each of its sentences."""

    text: str
    sentences: tuple[SentenceOutcome, ...]

    @property
    def replaced(self) -> int:
        return sum(outcome.action == "replaced" for outcome in self.sentences)

    @property
    def regenerated(self) -> int:
        return sum(outcome.action == "regenerated" for outcome in self.sentences)

    @property
    def untouched(self) -> bool:
        """True when the model's narrative passed as it was written."""
        return all(outcome.action == "kept" for outcome in self.sentences)


def verify(
    narrative: str,
    facts: Facts,
    regenerate: Callable[[str], str] | None = None,
    max_attempts: int = 2,
) -> Verification:
    """Check every sentence of `narrative`; re-ask or replace the ones that state something the facts do not.

    `regenerate(prompt)` gets a self-contained correction prompt (`correction_prompt`) and returns the model's new
    sentence; each answer is verified like the original, and one that states nothing checkable is not accepted
    (a chatty "Sure, here it is:" must not replace a wrong fact). After `max_attempts` failed answers, or without a
    callback, the sentence is replaced by the first plain sentence about its entity not already in the text.
    """
    index = _FactIndex(facts)
    carried: _Scope | None = None
    in_text: set[str] = set()  # sentences already in the result, without list markers: no replacement repeats one
    outcomes: list[SentenceOutcome] = []
    pieces: list[str] = []
    for sentence, separator in _segments(narrative):
        if not sentence.strip():
            pieces.append(sentence + separator)
            continue
        list_marker = _LIST_MARKER.match(sentence)
        marker = list_marker.group(0) if list_marker else ""
        check = _check_sentence(sentence, index, carried)
        if check.reasons:
            outcome = _mend(sentence, check, index, carried, regenerate, max_attempts, in_text)
            carried = _check_text(outcome.final, index, carried).carried
            in_text.add(outcome.final)
            if outcome.final and marker:
                outcome = replace(outcome, final=marker + outcome.final)  # the mended sentence keeps its list item
        else:
            outcome = SentenceOutcome(original=sentence, final=sentence, action="kept", reasons=())
            carried = check.carried
            in_text.add(sentence.removeprefix(marker))
        outcomes.append(outcome)
        if outcome.final:
            pieces.append(outcome.final + separator)
    text = "".join(pieces)
    if outcomes and not outcomes[-1].final:
        text = text.rstrip()
    return Verification(text=text, sentences=tuple(outcomes))


def sentence_problems(sentence: str, facts: Facts) -> list[str]:
    """Why one sentence, read on its own, does not match the facts; empty when it does."""
    return _check_sentence(sentence, _FactIndex(facts), None).reasons


def split_sentences(text: str) -> list[str]:
    """The sentences (and separate lines) of a narrative, as the verifier sees them."""
    return [sentence for sentence, _ in _segments(text) if sentence.strip()]


def correction_prompt(sentence: str, reasons: Sequence[str], facts: Facts, about: Iterable[EntityKey] = ()) -> str:
    """A self-contained prompt asking the model to rewrite one wrong sentence from the facts about its entity."""
    keys = sorted(set(about), key=_key_order)
    fact_lines = [line for key in keys for line in entity_sentences(facts, key)] or summary_sentences(facts)
    return (
        "Facts:\n"
        + "\n".join(f"- {line}" for line in fact_lines)
        + f'\n\nThis sentence from a report does not match the facts: "{sentence}"\n'
        + f"Problems: {'; '.join(reasons)}.\n"
        + "Rewrite it as one sentence that states only facts listed above, with camera and zone names written "
        "exactly as above. Reply with the sentence only."
    )


def plain_sentences(facts: Facts) -> list[str]:
    """Every fact as a plain sentence: the period summary, the rankings, then each camera and each of its zones.

    The prompt lists these as the model's facts, and the verifier falls back on them, so they must verify.
    """
    sentences = summary_sentences(facts)
    for camera in facts.cameras:
        sentences += entity_sentences(facts, camera.key)
        for zone in facts.zones_of(camera.camera):
            sentences += entity_sentences(facts, zone.key)
    return sentences


def summary_sentences(facts: Facts) -> list[str]:
    """The period as a whole: the typical camera's count and its changes, events, rankings and highest peaks."""
    if facts.overall_mean is None:
        return ["There were no counts in this period."]
    camera_count = len(facts.cameras)
    changes = _change_phrases(facts, facts.overall_day_change.percent, facts.overall_week_change.percent)
    sentences = [
        f"Across {_counted(camera_count, 'camera')}, a camera counted {format_people(facts.overall_mean)} people "
        f"on average" + (f", {' and '.join(changes)}" if changes else "") + "."
    ]
    breach_count = sum(breach.count for breach in facts.breaches)
    alerts = f"{_counted(len(facts.alerts), 'alert')} {'was' if len(facts.alerts) == 1 else 'were'} raised"
    breaches = f"{_counted(breach_count, 'count')} went over a threshold"
    unusual = f"{_counted(len(facts.unusual), 'count')} {'was' if len(facts.unusual) == 1 else 'were'} unusual"
    events = f"{alerts}, {breaches} and {unusual} for the hour and weekday."
    sentences.append(events[0].upper() + events[1:])
    sentences += _ranking_sentences(facts, [(camera, None) for camera in facts.busiest_cameras])
    sentences += _ranking_sentences(facts, list(facts.busiest_zones))
    for key, kind in ((facts.highest_camera_peak, "camera"), (facts.highest_zone_peak, "zone")):
        if key is not None:
            series = facts.series(key)
            sentences.append(
                f"{_entity_name(key)} had the highest peak of any {kind}: {format_people(series.peak)} people "
                f"at {_when(series.peak_at)}."
            )
    return sentences


def entity_sentences(facts: Facts, key: EntityKey) -> list[str]:
    """Plain sentences about one camera (zone None) or zone: its level, changes, breaches, unusual values, alerts."""
    series = facts.series(key)
    name = _entity_name(key)
    if series.mean is None:
        return [f"{name} had no counts in this period."]
    sentences = [
        f"{name} averaged {format_people(series.mean)} people and peaked at {format_people(series.peak)} "
        f"at {_when(series.peak_at)}."
    ]
    changes = _change_phrases(facts, series.day_change.percent, series.week_change.percent)
    if changes:
        sentences.append(f"The average of {name} was {' and '.join(changes)}.")
    for breach in facts.breaches:
        if breach.key == key:
            threshold = format_people(breach.threshold)
            highest = format_people(breach.highest_peak)
            if breach.count == 1:
                sentences.append(
                    f"{name} was over its threshold of {threshold} people once, peaking at {highest} "
                    f"at {_when(breach.highest_peak_at)}."
                )
            elif breach.first_at.date() == breach.last_at.date() == breach.highest_peak_at.date():
                sentences.append(
                    f"{name} was over its threshold of {threshold} people {breach.count} times on "
                    f"{format_day(breach.first_at)}, first at {format_time(breach.first_at)} and last at "
                    f"{format_time(breach.last_at)}, with a highest peak of {highest} at "
                    f"{format_time(breach.highest_peak_at)}."
                )
            else:
                sentences.append(
                    f"{name} was over its threshold of {threshold} people {breach.count} times, first at "
                    f"{_when(breach.first_at)} and last at {_when(breach.last_at)}, with a highest peak of "
                    f"{highest} at {_when(breach.highest_peak_at)}."
                )
    for unusual in facts.unusual:
        if unusual.key == key:
            sentences.append(
                f"At {_when(unusual.at)}, {name} averaged {format_people(unusual.value)} people, "
                f"{unusual.direction} its usual {format_people(unusual.usual)} for that hour and weekday."
            )
    for alert in facts.alerts:
        if alert.key == key:
            state = "acknowledged" if alert.acknowledged else "not acknowledged"
            sentences.append(
                f"An alert was raised for {name} at {_when(alert.raised_at)}: {format_people(alert.count)} people "
                f"against a threshold of {format_people(alert.threshold)}, {state}."
            )
    return sentences


def _entity_name(key: EntityKey) -> str:
    """How sentences name an entity: a zone always with its camera, since zone names repeat across cameras."""
    camera, zone = key
    if zone is None:
        return camera
    return f"{camera}'s {zone}" + ("" if zone.lower().endswith(("zone", "area")) else " zone")


def _when(moment: datetime) -> str:
    return f"{format_time(moment)} on {format_day(moment)}"


def _counted(count: int, noun: str) -> str:
    return f"{'no' if count == 0 else count} {noun}{'' if count == 1 else 's'}"


def _change_phrases(facts: Facts, day_percent: float | None, week_percent: float | None) -> list[str]:
    """ "12% higher than the previous day": the words the verifier reads the change's kind and direction from."""
    span = "day" if facts.is_single_day else "period"
    phrases = []
    for percent, against in ((day_percent, f"the previous {span}"), (week_percent, f"the same {span} a week earlier")):
        if percent is None:
            continue
        if round_shown(percent) == 0:
            phrases.append(f"about the same as {against}")
        else:
            phrases.append(f"{format_percent(percent)} {'higher' if percent > 0 else 'lower'} than {against}")
    return phrases


def _ranking_sentences(facts: Facts, ranked: list[EntityKey]) -> list[str]:
    if len(ranked) < 2:
        return []
    kind = "camera" if ranked[0][1] is None else "zone"
    followers = [_entity_name(key) for key in ranked[1:]]
    followed_by = followers[0] if len(followers) == 1 else f"{', '.join(followers[:-1])} and {followers[-1]}"
    return [f"By average count, {_entity_name(ranked[0])} was the busiest {kind}, followed by {followed_by}."]


def _key_order(key: EntityKey) -> tuple[str, str]:
    """A camera before its zones."""
    return (key[0], key[1] or "")


# --- What may be said, per entity -------------------------------------------------------------------------------


@dataclass
class _Known:
    """The values, percentages and times that may be stated about one entity, or about the period as a whole."""

    numbers: list[float] = field(default_factory=list)
    percents: list[tuple[float, PercentKind]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    range_ends: list[datetime] = field(default_factory=list)  # ends of the buckets that start at some of `times`


@dataclass(frozen=True)
class _Scope:
    """The entity a part of a sentence is about: a camera (with its zones named in the sentence) or a zone."""

    label: str
    keys: frozenset[EntityKey]


class _FactIndex:
    """The facts rearranged for lookup: per entity, the period-wide ones, the names, the days."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.period = _Known()
        self.entities: dict[EntityKey, _Known] = {}
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

    def _known(self, key: EntityKey) -> _Known:
        return self.entities.setdefault(key, _Known())

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

    def known_about(self, scope: _Scope | None) -> list[_Known]:
        """The period-wide facts plus those of the scope's entities (of every entity when the scope is unknown)."""
        if scope is None:
            return [self.period, *self.entities.values()]
        return [self.period, *(self.entities[key] for key in scope.keys if key in self.entities)]


# --- Reading a sentence -----------------------------------------------------------------------------------------

_MINUS_SIGNS = ("-", "\u2212")
_PLACEHOLDER = "\ue000"  # stands in for text already read (a name, a date, a time): not a word, not a digit

_SENTENCE_BREAK = re.compile(
    r"[.!?][\"'\u201d\u2019)\]]*(?P<space>[ \t]+)(?=[\"'\u201c\u2018(\[]?[A-Z0-9])"  # a full stop, a capital
    r"|(?P<newline>\s*\n\s*)"  # or a new line
)

_LIST_NUMBER = re.compile(r"\s*\d{1,2}[.)]")
_LIST_MARKER = re.compile(r"\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")  # a list item's "- " or "1. ", not part of the text

_WEEKDAY = "|".join([*WEEKDAY_NAMES, "Tues", "Thurs", "Thur", *(name[:3] for name in WEEKDAY_NAMES)])
_MONTH = "|".join([*MONTH_NAMES, "Sept", *(name[:3] for name in MONTH_NAMES)])
_DATE = re.compile(
    r"(?P<iso>\b\d{4}-\d{2}-\d{2}\b)"
    r"|(?P<slashed>\b\d{1,2}/\d{1,2}(?:/\d{2}(?:\d{2})?)?\b)"
    rf"|(?:\b(?P<weekday>{_WEEKDAY})\b\.?,?\s+(?:the\s+)?)?"
    rf"(?:\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH})\b\.?"
    rf"|\b(?P<month_first>{_MONTH})\b\.?\s+(?P<day_after>\d{{1,2}})(?:st|nd|rd|th)?\b)"
    r"(?:,?\s+(?P<year>\d{4})\b)?"
    rf"|\b(?P<lone_weekday>{_WEEKDAY})\b\.?"
)
_MERIDIEM = r"\s*(?P<{name}>[ap])\.?\s?m\b\.?"
_TIME = re.compile(
    r"(?<![\w:.])(?P<hour>\d{1,2}):(?P<minute>[0-5]\d)(?![\w:])(?:" + _MERIDIEM.format(name="meridiem") + ")?"
    r"|(?<![\w:.])(?P<bare_hour>\d{1,2})"
    + _MERIDIEM.format(name="bare_meridiem")
    + r"|\b(?P<word>noon|midday|midnight)\b",
    re.IGNORECASE,
)
_RANGE_JOINER = re.compile(r"\s*(?:-|\u2013|\u2014|to|and|until|till|through)\s*", re.IGNORECASE)
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-\u2212+])?(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?"
    r"(?:(?P<percent>\s*(?:%|per\s?cent\b))|(?P<ordinal>st|nd|rd|th)\b)?(?!\w)",
    re.IGNORECASE,
)
_NAME_WORDS = r"[A-Z0-9][\w'-]*(?:\s+[A-Z][\w'-]*)*"
_INVENTED_NAMES = (
    re.compile(rf"\b(?i:camera|cam|zone)\s+(?:(?i:no\.?|number|#)\s*)?(?P<name>{_NAME_WORDS})"),
    re.compile(r"\b(?i:the)\s+(?P<name>[A-Z][\w'-]*(?:\s+[\w'-]+){0,2})\s+(?i:camera|zone)\b"),
)
_NOT_A_NAME = {
    word.lower()
    for word in (
        *WEEKDAY_NAMES,
        *MONTH_NAMES,
        "busiest",
        "quietest",
        "same",
        "other",
        "first",
        "second",
        "third",
        "last",
        "only",
        "whole",
        "entire",
        "each",
        "every",
        "this",
        "that",
    )
}
_RANK_BEFORE = re.compile(r"(?:\d+(?:st|nd|rd|th)|second|third|fourth|fifth)\s+$", re.I)  # "2nd busiest"
_SUPERLATIVE = re.compile(r"\b(?P<word>busiest|quietest|least busy|most crowded)\s+(?P<kind>camera|zone)\b", re.I)
_CLAUSE_BREAK = re.compile(r"[,;:()]|\b(?:and|but|while|whereas|although)\b", re.IGNORECASE)
_REFERS_BACK = re.compile(r"\b(?:it|its|this camera|this zone|the camera|the zone)\b", re.IGNORECASE)
_PERCENT_KINDS: tuple[tuple[PercentKind, re.Pattern[str]], ...] = (
    ("week", re.compile(r"\bweeks?\b", re.I)),
    ("usual", re.compile(r"\b(?:usual|usually|typical|typically|normal|normally)\b", re.I)),
    ("threshold", re.compile(r"\b(?:threshold|limit)\b", re.I)),
    ("day", re.compile(r"\b(?:day|yesterday|previous)\b", re.I)),
)
_UP = re.compile(
    r"\b(?:rose|rise|rises|risen|up|increase[ds]?|higher|more|above|grew|grow|growth|jump(?:ed)?|climbed|gain(?:ed)?"
    r"|busier)\b",  # not "over": "a 10% decrease over last week"
    re.I,
)
_DOWN = re.compile(
    r"\b(?:fell|fall|falls|fallen|down|decrease[ds]?|lower|less|fewer|below|drop(?:ped)?|decline[ds]?|quieter|under)\b",
    re.I,
)


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    name: str  # as the facts write it
    kind: Literal["camera", "zone", "site"]
    scope: _Scope | None  # None for a site: it says where, not which camera's facts


@dataclass
class _SentenceCheck:
    reasons: list[str]
    subject: _Scope | None  # what a replacement should be about: the first entity named, or the one referred back to
    carried: _Scope | None  # what "it" in the next sentence refers to
    substantive: bool  # names a known entity or states a number or time


def _segments(text: str) -> list[tuple[str, str]]:
    """(sentence, the whitespace after it) pairs that concatenate back to the text."""
    segments, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        group = "space" if match.group("space") is not None else "newline"
        separator_start, separator_end = match.span(group)
        segments.append((text[start:separator_start], text[separator_start:separator_end]))
        start = separator_end
    segments.append((text[start:], ""))
    merged: list[tuple[str, str]] = []
    for sentence, separator in segments:
        if merged and _LIST_NUMBER.fullmatch(merged[-1][0]):
            number, number_separator = merged.pop()  # "1." ended no sentence: it numbers the next one
            sentence = number + number_separator + sentence
        merged.append((sentence, separator))
    return [(sentence, separator) for sentence, separator in merged if sentence or separator]


def _masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """The text with the spans blanked out, positions kept, so later patterns do not read them again."""
    characters = list(text)
    for start, end in spans:
        characters[start:end] = _PLACEHOLDER * (end - start)
    return "".join(characters)


def _check_text(text: str, index: _FactIndex, carried: _Scope | None) -> _SentenceCheck:
    """Check a (possibly multi-sentence) answer as consecutive sentences."""
    reasons: list[str] = []
    subject, substantive = None, False
    for sentence in split_sentences(text):
        check = _check_sentence(sentence, index, carried)
        reasons += check.reasons
        subject = subject or check.subject
        substantive = substantive or check.substantive
        carried = check.carried
    return _SentenceCheck(reasons=reasons, subject=subject, carried=carried, substantive=substantive)


def _check_sentence(sentence: str, index: _FactIndex, carried: _Scope | None) -> _SentenceCheck:
    mentions = _mentions(sentence, index)
    governing = [mention for mention in mentions if mention.scope is not None]
    referred = carried if not governing and _REFERS_BACK.search(sentence) else None

    def scope_at(position: int) -> _Scope | None:
        before = [mention for mention in governing if mention.end <= position]
        if before:
            return before[-1].scope
        after = [mention for mention in governing if mention.start >= position]
        return after[0].scope if after else referred

    list_marker = _LIST_MARKER.match(sentence)
    text = _masked(
        sentence, [(mention.start, mention.end) for mention in mentions] + ([list_marker.span()] if list_marker else [])
    )
    reasons: list[str] = []
    for pattern in _INVENTED_NAMES:
        for match in pattern.finditer(text):
            name = match.group("name").removesuffix("'s")
            if name.split()[0].lower() not in _NOT_A_NAME:
                reasons.append(f"'{name}' is not a known camera or zone")
                text = _masked(text, [match.span()])

    named_days: set[date] = set()
    date_matches = list(_DATE.finditer(text))
    for match in date_matches:
        days = _days_meant(match, index)
        if days:
            named_days |= days
        else:
            reasons.append(f"{_as_written(match)} is not a day of this report")
    text = _masked(text, [match.span() for match in date_matches])

    time_matches = list(_TIME.finditer(text))
    for position, match in enumerate(time_matches):
        follows_range = position > 0 and _RANGE_JOINER.fullmatch(text[time_matches[position - 1].end() : match.start()])
        reason = _time_problem(match, scope_at(match.start()), index, named_days, bool(follows_range))
        if reason:
            reasons.append(reason)
    text = _masked(text, [match.span() for match in time_matches])

    number_matches = list(_NUMBER.finditer(text))
    for match in number_matches:
        reason = _number_problem(match, text, scope_at(match.start()), index)
        if reason:
            reasons.append(reason)

    reasons += _superlative_problems(text, mentions, index)
    substantive = bool(governing or time_matches or number_matches)
    return _SentenceCheck(
        reasons=reasons,
        subject=governing[0].scope if governing else referred,
        carried=governing[-1].scope if governing else carried,
        substantive=substantive,
    )


def _mentions(sentence: str, index: _FactIndex) -> list[_Mention]:
    """Known names in the sentence, each with the entities it stands for.

    A camera stands for itself and for those of its zones the sentence also names ("Far side of East entrance
    peaked at 150"); a zone stands for that zone of the cameras the sentence names, else of every camera that has it.
    """
    if index.name_pattern is None:
        return []
    found = [(match.start(), match.end(), match.group(0).lower()) for match in index.name_pattern.finditer(sentence)]
    named_cameras = {index.camera_names[name] for _, _, name in found if name in index.camera_names}
    named_zones = {name for _, _, name in found if name in index.zone_keys and name not in index.camera_names}
    mentions = []
    for start, end, name in found:
        if name in index.camera_names:
            camera = index.camera_names[name]
            keys = {(camera, None)} | {key for zone in named_zones for key in index.zone_keys[zone] if key[0] == camera}
            mentions.append(_Mention(start, end, camera, "camera", _Scope(camera, frozenset(keys))))
        elif name in index.zone_keys:
            keys = [key for key in index.zone_keys[name] if key[0] in named_cameras] or index.zone_keys[name]
            zone_name = keys[0][1] or name
            mentions.append(_Mention(start, end, zone_name, "zone", _Scope(zone_name, frozenset(keys))))
        else:
            mentions.append(_Mention(start, end, index.site_names[name], "site", None))
    return mentions


def _days_meant(match: re.Match[str], index: _FactIndex) -> set[date]:
    """The report days a date or weekday can mean; empty when it is none of them (or its weekday is wrong)."""
    if match.group("iso"):
        try:
            day = date.fromisoformat(match.group("iso"))
        except ValueError:
            return set()
        return {day} & set(index.days)
    if match.group("slashed"):
        first, second, *year = (int(part) for part in match.group("slashed").split("/"))
        # 28/11 or 11/28: either reading may be meant; a two-digit year is this century's.
        return {
            day
            for day in index.days
            if (day.day, day.month) in ((first, second), (second, first))
            and (not year or year[0] in (day.year, day.year % 100))
        }
    if match.group("lone_weekday"):
        weekday = _weekday_number(match.group("lone_weekday"))
        return {day for day in index.days if day.weekday() == weekday}
    month = _month_number(match.group("month") or match.group("month_first"))
    day_of_month = int(match.group("day") or match.group("day_after"))
    year = int(match.group("year")) if match.group("year") else None
    days = {
        day
        for day in index.days
        if (day.month, day.day) == (month, day_of_month) and (year is None or day.year == year)
    }
    if match.group("weekday"):
        weekday = _weekday_number(match.group("weekday"))
        days = {day for day in days if day.weekday() == weekday}
    return days


def _as_written(match: re.Match[str]) -> str:
    """The matched text for a reason, without a sentence's final full stop ("Sunday", but "3 p.m.")."""
    return re.sub(r"(?<![ap]\.m)\.$", "", match.group(0).strip(), flags=re.IGNORECASE)


def _weekday_number(name: str) -> int:
    return [weekday[:3] for weekday in WEEKDAY_NAMES].index(name[:3].title())


def _month_number(name: str) -> int:
    return [month[:3] for month in MONTH_NAMES].index(name[:3].title()) + 1


def _clock(match: re.Match[str]) -> tuple[int, int] | None:
    """(hour, minute) on the 24-hour clock, or None when the text is no clock time ("14 pm", "25:00")."""
    if match.group("word"):
        return (0, 0) if match.group("word").lower() == "midnight" else (12, 0)
    hour = int(match.group("hour") or match.group("bare_hour"))
    minute = int(match.group("minute") or 0)
    meridiem = (match.group("meridiem") or match.group("bare_meridiem") or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    if hour == 24 and minute == 0:
        return (0, 0)
    return (hour, minute) if hour < 24 else None


def _time_problem(
    match: re.Match[str], scope: _Scope | None, index: _FactIndex, named_days: set[date], ends_range: bool
) -> str | None:
    shown = _as_written(match)
    clock = _clock(match)
    if clock is None:
        return f"{shown} is not a clock time"
    known = index.known_about(scope)
    candidates = [moment for facts in known for moment in facts.times]
    if ends_range:
        # A range's end is often the end of the last bucket ("14:00 to 15:00"), possibly past midnight.
        ends = [moment for facts in known for moment in facts.range_ends]
        if any((moment.hour, moment.minute) == clock for moment in ends):
            return None
    if any(
        (moment.hour, moment.minute) == clock and (not named_days or moment.date() in named_days)
        for moment in candidates
    ):
        return None
    about = f"the facts about {scope.label}" if scope else "this report's facts"
    return f"{shown} is not a time in {about}" + (" on the day named" if named_days else "")


def _number_problem(match: re.Match[str], text: str, scope: _Scope | None, index: _FactIndex) -> str | None:
    shown = match.group(0).strip()
    places = len(match.group("decimals")) - 1 if match.group("decimals") else 0
    magnitude = Decimal(match.group("digits").replace(",", "") + (match.group("decimals") or ""))
    sign = match.group("sign") or ""
    bare_four_digits = re.fullmatch(r"\d{4}", match.group(0).strip()) is not None
    if bare_four_digits and int(magnitude) in index.years:
        return None  # a year of the report
    if match.group("ordinal"):
        return _ordinal_problem(shown, int(magnitude), scope, index)
    clause = _clause_around(text, match.start(), match.end())
    about = f"a fact about {scope.label}" if scope else "a fact in this report"
    if match.group("percent"):
        if _percent_matches(magnitude, places, sign, clause, index.known_about(scope)):
            return None
        return f"{shown} is not {about}"
    value = -magnitude if sign in _MINUS_SIGNS else magnitude
    if any(round_shown(number, places) == value for facts in index.known_about(scope) for number in facts.numbers):
        return None
    return f"{shown} is not {about}"


def _ordinal_problem(shown: str, ordinal: int, scope: _Scope | None, index: _FactIndex) -> str | None:
    """ "2nd busiest" must be the entity's rank by mean; "the 28th" may also be a day of the report."""
    if any(day.day == ordinal for day in index.days):
        return None
    if scope is None:
        if ordinal in index.ranks.values():
            return None
        return f"{shown} is not a rank or day in this report"
    if any(index.ranks.get(key) == ordinal for key in scope.keys):
        return None
    return f"{shown} is not the rank of {scope.label}"


def _clause_around(text: str, start: int, end: int) -> str:
    """The part of the sentence between the clause breaks around a number: where its direction words are."""
    breaks = list(_CLAUSE_BREAK.finditer(text))
    clause_start = max((match.end() for match in breaks if match.end() <= start), default=0)
    clause_end = min((match.start() for match in breaks if match.start() >= end), default=len(text))
    return text[clause_start:clause_end]


def _percent_matches(magnitude: Decimal, places: int, sign: str, clause: str, known: list[_Known]) -> bool:
    """A percentage matches a fact's percentage of the kind the clause names, in the direction it says."""
    kind = next((kind for kind, pattern in _PERCENT_KINDS if pattern.search(clause)), None)
    rises, falls = bool(_UP.search(clause)), bool(_DOWN.search(clause))
    if sign in _MINUS_SIGNS:
        rises, falls = False, True
    elif sign == "+":
        rises, falls = True, False
    for facts in known:
        for percent, percent_kind in facts.percents:
            if kind is not None and percent_kind != kind:
                continue
            shown = round_shown(percent, places)
            if abs(shown) != magnitude:
                continue
            if shown == 0 or rises == falls or (rises and shown > 0) or (falls and shown < 0):
                return True
    return False


def _superlative_problems(text: str, mentions: list[_Mention], index: _FactIndex) -> list[str]:
    """ "X was the busiest camera" / "the quietest zone was X" must hold by mean (busiest: or by highest peak)."""
    problems = []
    breaks = [match.start() for match in _CLAUSE_BREAK.finditer(text)]
    for match in _SUPERLATIVE.finditer(text):
        if _RANK_BEFORE.search(text[: match.start()]):
            continue  # a rank other than the first: the ordinal check reads it
        kind = match.group("kind").lower()
        of_kind = [mention for mention in mentions if mention.kind == kind]
        clause_start = max((position for position in breaks if position < match.start()), default=0)
        before = [mention for mention in of_kind if clause_start <= mention.start and mention.end <= match.start()]
        after = [mention for mention in of_kind if mention.start >= match.end()]
        subject = before[-1] if before else after[0] if after else None
        if subject is None or subject.scope is None:
            continue
        if kind == "camera":
            ranked = [(camera, None) for camera in index.facts.busiest_cameras]
            highest = index.facts.highest_camera_peak
        else:
            ranked, highest = list(index.facts.busiest_zones), index.facts.highest_zone_peak
        keys = {key for key in subject.scope.keys if (key[1] is None) == (kind == "camera")}
        word = match.group("word").lower()
        if word in ("busiest", "most crowded"):
            holds = bool(ranked) and (ranked[0] in keys or highest in keys)
        else:
            holds = bool(ranked) and ranked[-1] in keys
        if not holds:
            problems.append(f"{subject.name} is not the {word} {kind}")
    return problems


# --- Mending a sentence -----------------------------------------------------------------------------------------


def _mend(
    sentence: str,
    check: _SentenceCheck,
    index: _FactIndex,
    carried: _Scope | None,
    regenerate: Callable[[str], str] | None,
    max_attempts: int,
    in_text: set[str],
) -> SentenceOutcome:
    about = check.subject.keys if check.subject else frozenset()
    attempts: list[Attempt] = []
    if regenerate is not None:
        wrong, reasons = sentence, check.reasons
        for _ in range(max_attempts):
            answer = _answer_text(regenerate(correction_prompt(wrong, reasons, index.facts, about)))
            answer_check = _check_text(answer, index, carried)
            if answer and answer_check.substantive and not answer_check.reasons:
                return SentenceOutcome(sentence, answer, "regenerated", tuple(check.reasons), tuple(attempts))
            reasons = answer_check.reasons or ["it states nothing that can be checked against the facts"]
            attempts.append(Attempt(answer, tuple(reasons)))
            wrong = answer or wrong
    candidates = [line for key in sorted(about, key=_key_order) for line in entity_sentences(index.facts, key)]
    replacement = next((line for line in candidates or summary_sentences(index.facts) if line not in in_text), "")
    return SentenceOutcome(sentence, replacement, "replaced", tuple(check.reasons), tuple(attempts))


def _answer_text(answer: str) -> str:
    """The model's answer without quotes and lead-in lines ("Here is the corrected sentence:")."""
    lines = [line.strip().strip("\"“”'").strip() for line in answer.strip().splitlines()]
    return " ".join(line for line in lines if line and not line.endswith(":"))
