"""How the verifier reads a sentence: where it ends, and which names, days, clock times and numbers it states.

The patterns here are what the verifier knows about how reports are written ("2 pm", "14:00 to 15:00", "1,200",
"12 per cent higher", "Sat 28 Nov", "the 2nd busiest", "camera X", "its"). They are kept apart from the rules in
`checks` that compare what they find with the facts, so that reading and judging can each be followed on their own.
Names are read against the facts' own names (`FactIndex`): each known name becomes the scope, the camera or zone,
whose facts the numbers and times near it are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from llm_reports.fact_index import FactIndex, PercentKind, Scope
from llm_reports.facts import MONTH_NAMES, WEEKDAY_NAMES

MINUS_SIGNS = ("-", "\u2212")
_PLACEHOLDER = "\ue000"  # stands in for text already read (a name, a date, a time): not a word, not a digit

_SENTENCE_BREAK = re.compile(
    r"[.!?][\"'\u201d\u2019)\]]*(?P<space>[ \t]+)(?=[\"'\u201c\u2018(\[]?[A-Z0-9])"  # a full stop, a capital
    r"|(?P<newline>\s*\n\s*)"  # or a new line
)

_LIST_NUMBER = re.compile(r"\s*\d{1,2}[.)]")
LIST_MARKER = re.compile(r"\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")  # a list item's "- " or "1. ", not part of the text

_WEEKDAY = "|".join([*WEEKDAY_NAMES, "Tues", "Thurs", "Thur", *(name[:3] for name in WEEKDAY_NAMES)])
_MONTH = "|".join([*MONTH_NAMES, "Sept", *(name[:3] for name in MONTH_NAMES)])
DATE = re.compile(
    r"(?P<iso>\b\d{4}-\d{2}-\d{2}\b)"
    r"|(?P<slashed>\b\d{1,2}/\d{1,2}(?:/\d{2}(?:\d{2})?)?\b)"
    rf"|(?:\b(?P<weekday>{_WEEKDAY})\b\.?,?\s+(?:the\s+)?)?"
    rf"(?:\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH})\b\.?"
    rf"|\b(?P<month_first>{_MONTH})\b\.?\s+(?P<day_after>\d{{1,2}})(?:st|nd|rd|th)?\b)"
    r"(?:,?\s+(?P<year>\d{4})\b)?"
    rf"|\b(?P<lone_weekday>{_WEEKDAY})\b\.?"
)
_MERIDIEM = r"\s*(?P<{name}>[ap])\.?\s?m\b\.?"
TIME = re.compile(
    r"(?<![\w:.])(?P<hour>\d{1,2}):(?P<minute>[0-5]\d)(?![\w:])(?:" + _MERIDIEM.format(name="meridiem") + ")?"
    r"|(?<![\w:.])(?P<bare_hour>\d{1,2})"
    + _MERIDIEM.format(name="bare_meridiem")
    + r"|\b(?P<word>noon|midday|midnight)\b",
    re.IGNORECASE,
)
RANGE_JOINER = re.compile(r"\s*(?:-|\u2013|\u2014|to|and|until|till|through)\s*", re.IGNORECASE)
NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-\u2212+])?(?P<digits>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?"
    r"(?:(?P<percent>\s*(?:%|per\s?cent\b))|(?P<ordinal>st|nd|rd|th)\b)?(?!\w)",
    re.IGNORECASE,
)
_NAME_WORDS = r"[A-Z0-9][\w'-]*(?:\s+[A-Z][\w'-]*)*"
INVENTED_NAMES = (
    re.compile(rf"\b(?i:camera|cam|zone)\s+(?:(?i:no\.?|number|#)\s*)?(?P<name>{_NAME_WORDS})"),
    re.compile(r"\b(?i:the)\s+(?P<name>[A-Z][\w'-]*(?:\s+[\w'-]+){0,2})\s+(?i:camera|zone)\b"),
)
NOT_A_NAME = {
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
RANK_BEFORE = re.compile(r"(?:\d+(?:st|nd|rd|th)|second|third|fourth|fifth)\s+$", re.I)  # "2nd busiest"
SUPERLATIVE = re.compile(r"\b(?P<word>busiest|quietest|least busy|most crowded)\s+(?P<kind>camera|zone)\b", re.I)
CLAUSE_BREAK = re.compile(r"[,;:()]|\b(?:and|but|while|whereas|although)\b", re.IGNORECASE)
REFERS_BACK = re.compile(r"\b(?:it|its|this camera|this zone|the camera|the zone)\b", re.IGNORECASE)
PERCENT_KINDS: tuple[tuple[PercentKind, re.Pattern[str]], ...] = (
    ("week", re.compile(r"\bweeks?\b", re.I)),
    ("usual", re.compile(r"\b(?:usual|usually|typical|typically|normal|normally)\b", re.I)),
    ("threshold", re.compile(r"\b(?:threshold|limit)\b", re.I)),
    ("day", re.compile(r"\b(?:day|yesterday|previous)\b", re.I)),
)
UP = re.compile(
    r"\b(?:rose|rise|rises|risen|up|increase[ds]?|higher|more|above|grew|grow|growth|jump(?:ed)?|climbed|gain(?:ed)?"
    r"|busier)\b",  # not "over": "a 10% decrease over last week"
    re.I,
)
DOWN = re.compile(
    r"\b(?:fell|fall|falls|fallen|down|decrease[ds]?|lower|less|fewer|below|drop(?:ped)?|decline[ds]?|quieter|under)\b",
    re.I,
)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    name: str  # as the facts write it
    kind: Literal["camera", "zone", "site"]
    scope: Scope | None  # None for a site: it says where, not which camera's facts


def sentence_segments(text: str) -> list[tuple[str, str]]:
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


def masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """The text with the spans blanked out, positions kept, so later patterns do not read them again."""
    characters = list(text)
    for start, end in spans:
        characters[start:end] = _PLACEHOLDER * (end - start)
    return "".join(characters)


def mentions_in(sentence: str, index: FactIndex) -> list[Mention]:
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
            mentions.append(Mention(start, end, camera, "camera", Scope(camera, frozenset(keys))))
        elif name in index.zone_keys:
            keys = [key for key in index.zone_keys[name] if key[0] in named_cameras] or index.zone_keys[name]
            zone_name = keys[0][1] or name
            mentions.append(Mention(start, end, zone_name, "zone", Scope(zone_name, frozenset(keys))))
        else:
            mentions.append(Mention(start, end, index.site_names[name], "site", None))
    return mentions


def days_meant(match: re.Match[str], index: FactIndex) -> set[date]:
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


def as_written(match: re.Match[str]) -> str:
    """The matched text for a reason, without a sentence's final full stop ("Sunday", but "3 p.m.")."""
    return re.sub(r"(?<![ap]\.m)\.$", "", match.group(0).strip(), flags=re.IGNORECASE)


def _weekday_number(name: str) -> int:
    return [weekday[:3] for weekday in WEEKDAY_NAMES].index(name[:3].title())


def _month_number(name: str) -> int:
    return [month[:3] for month in MONTH_NAMES].index(name[:3].title()) + 1


def clock_time(match: re.Match[str]) -> tuple[int, int] | None:
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


def clause_around(text: str, start: int, end: int) -> str:
    """The part of the sentence between the clause breaks around a number: where its direction words are."""
    breaks = list(CLAUSE_BREAK.finditer(text))
    clause_start = max((match.end() for match in breaks if match.end() <= start), default=0)
    clause_end = min((match.start() for match in breaks if match.start() >= end), default=len(text))
    return text[clause_start:clause_end]
