"""Whether one sentence states only what the facts say: the rules the verifier holds each sentence to.

Each sentence's numbers, clock times, days and camera/zone names (as `claims` reads them) are compared with the facts
(as `FactIndex` lays them out per entity):

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

Numbers inside names ("Gate 2") are part of the name. A sentence with nothing to check passes. What happens to a
sentence that fails is `verify`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from llm_reports.claims import (
    CLAUSE_BREAK,
    DATE,
    DOWN,
    INVENTED_NAMES,
    LIST_MARKER,
    MINUS_SIGNS,
    NOT_A_NAME,
    NUMBER,
    PERCENT_KINDS,
    RANGE_JOINER,
    RANK_BEFORE,
    REFERS_BACK,
    SUPERLATIVE,
    TIME,
    UP,
    Mention,
    as_written,
    clause_around,
    clock_time,
    days_meant,
    masked,
    mentions_in,
)
from llm_reports.fact_index import FactIndex, Known, Scope
from llm_reports.facts import round_shown


@dataclass
class SentenceCheck:
    reasons: list[str]
    subject: Scope | None  # what a replacement should be about: the first entity named, or the one referred back to
    carried: Scope | None  # what "it" in the next sentence refers to
    substantive: bool  # names a known entity or states a number or time


def check_sentence(sentence: str, index: FactIndex, carried: Scope | None) -> SentenceCheck:
    mentions = mentions_in(sentence, index)
    governing = [mention for mention in mentions if mention.scope is not None]
    referred = carried if not governing and REFERS_BACK.search(sentence) else None

    def scope_at(position: int) -> Scope | None:
        before = [mention for mention in governing if mention.end <= position]
        if before:
            return before[-1].scope
        after = [mention for mention in governing if mention.start >= position]
        return after[0].scope if after else referred

    list_marker = LIST_MARKER.match(sentence)
    text = masked(
        sentence, [(mention.start, mention.end) for mention in mentions] + ([list_marker.span()] if list_marker else [])
    )
    reasons: list[str] = []
    for pattern in INVENTED_NAMES:
        for match in pattern.finditer(text):
            name = match.group("name").removesuffix("'s")
            if name.split()[0].lower() not in NOT_A_NAME:
                reasons.append(f"'{name}' is not a known camera or zone")
                text = masked(text, [match.span()])

    named_days: set[date] = set()
    date_matches = list(DATE.finditer(text))
    for match in date_matches:
        days = days_meant(match, index)
        if days:
            named_days |= days
        else:
            reasons.append(f"{as_written(match)} is not a day of this report")
    text = masked(text, [match.span() for match in date_matches])

    time_matches = list(TIME.finditer(text))
    for position, match in enumerate(time_matches):
        follows_range = position > 0 and RANGE_JOINER.fullmatch(text[time_matches[position - 1].end() : match.start()])
        reason = _time_problem(match, scope_at(match.start()), index, named_days, bool(follows_range))
        if reason:
            reasons.append(reason)
    text = masked(text, [match.span() for match in time_matches])

    number_matches = list(NUMBER.finditer(text))
    for match in number_matches:
        reason = _number_problem(match, text, scope_at(match.start()), index)
        if reason:
            reasons.append(reason)

    reasons += _superlative_problems(text, mentions, index)
    substantive = bool(governing or time_matches or number_matches)
    return SentenceCheck(
        reasons=reasons,
        subject=governing[0].scope if governing else referred,
        carried=governing[-1].scope if governing else carried,
        substantive=substantive,
    )


def _time_problem(
    match: re.Match[str], scope: Scope | None, index: FactIndex, named_days: set[date], ends_range: bool
) -> str | None:
    shown = as_written(match)
    clock = clock_time(match)
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


def _number_problem(match: re.Match[str], text: str, scope: Scope | None, index: FactIndex) -> str | None:
    shown = match.group(0).strip()
    places = len(match.group("decimals")) - 1 if match.group("decimals") else 0
    magnitude = Decimal(match.group("digits").replace(",", "") + (match.group("decimals") or ""))
    sign = match.group("sign") or ""
    bare_four_digits = re.fullmatch(r"\d{4}", match.group(0).strip()) is not None
    if bare_four_digits and int(magnitude) in index.years:
        return None  # a year of the report
    if match.group("ordinal"):
        return _ordinal_problem(shown, int(magnitude), scope, index)
    clause = clause_around(text, match.start(), match.end())
    about = f"a fact about {scope.label}" if scope else "a fact in this report"
    if match.group("percent"):
        if _percent_matches(magnitude, places, sign, clause, index.known_about(scope)):
            return None
        return f"{shown} is not {about}"
    value = -magnitude if sign in MINUS_SIGNS else magnitude
    if any(round_shown(number, places) == value for facts in index.known_about(scope) for number in facts.numbers):
        return None
    return f"{shown} is not {about}"


def _ordinal_problem(shown: str, ordinal: int, scope: Scope | None, index: FactIndex) -> str | None:
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


def _percent_matches(magnitude: Decimal, places: int, sign: str, clause: str, known: list[Known]) -> bool:
    """A percentage matches a fact's percentage of the kind the clause names, in the direction it says."""
    kind = next((kind for kind, pattern in PERCENT_KINDS if pattern.search(clause)), None)
    rises, falls = bool(UP.search(clause)), bool(DOWN.search(clause))
    if sign in MINUS_SIGNS:
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


def _superlative_problems(text: str, mentions: list[Mention], index: FactIndex) -> list[str]:
    """ "X was the busiest camera" / "the quietest zone was X" must hold by mean (busiest: or by highest peak)."""
    problems = []
    breaks = [match.start() for match in CLAUSE_BREAK.finditer(text)]
    for match in SUPERLATIVE.finditer(text):
        if RANK_BEFORE.search(text[: match.start()]):
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
