"""Chat messages for the report model: the count history, then the facts by id, then the instruction, last.

The model answers with fact ids only (`report` renders the sentences). The order is deliberate. SnapKV keeps the cache
entries that the last prompt tokens (its observation window) attend to, so the instruction goes at the very end, where
it decides which history survives compression. The facts come just before it, each with its id. The history fills
whatever budget is left: it is what lets the model see which facts stand out against the weeks before, and it is the
one part that may be cut, oldest lines first, so the period itself is the last to go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from llm_reports.events import Event
from llm_reports.facts import Facts, UnusualValue, format_day, format_people, format_time
from llm_reports.history import AlertRecord, Bucket, History

SYSTEM_PROMPT = (
    "You write short, factual reports about crowd counts for city operators. You state only the facts you are given."
)
DEFAULT_INSTRUCTION = (
    "Choose the 4 to 8 facts above that the city's operators most need to read about this period, the most "
    "important first. Reply with their ids only, separated by commas."
)
QUESTION_INSTRUCTION = (
    "Which of the facts above answer the question below? Reply with their ids only, separated by commas, the most "
    "relevant first, or NONE if no fact answers it.\nQuestion: {question}"
)
EARLIER_HEADING = "Earlier counts, for comparison:"
PERIOD_HEADING = "Counts in the period:"
FACTS_HEADING = "Facts, computed exactly from the counts, each with its id:"

Message = dict[str, str]


class PromptBudgetError(ValueError):
    """The facts and the instruction alone do not fit the token budget: they are never cut, so nothing fits."""


@dataclass(frozen=True)
class ContextLine:
    """One line of history: a camera's bucket with its zones and notable events, or an alert."""

    in_period: bool
    text: str


def build_messages(
    history: History,
    facts: Facts,
    events: tuple[Event, ...],
    count_tokens: Callable[[str], int],
    max_prompt_tokens: int,
    instruction: str = DEFAULT_INSTRUCTION,
) -> list[Message]:
    """System and user messages whose text (system + newline + user) counts at most `max_prompt_tokens`.

    The user message holds the newest history lines that fit, then every event by id, then `instruction`. The budget
    covers the messages' text, not the chat template's role markers: leave the caller's margin for those.
    """
    lines = context_lines(history, facts)
    fact_lines = [f"{event.id}: {event.sentence}" for event in events]
    header = _header(history, facts)

    def total_tokens(kept: list[ContextLine]) -> int:
        return count_tokens(SYSTEM_PROMPT + "\n" + _user_text(header, kept, fact_lines, instruction))

    fixed_tokens = total_tokens([])
    if fixed_tokens > max_prompt_tokens:
        raise PromptBudgetError(
            f"the facts and the instruction alone take {fixed_tokens} tokens, over the budget of {max_prompt_tokens}"
        )
    kept_count = _newest_lines_that_fit(lines, count_tokens, max_prompt_tokens - fixed_tokens)
    # Tokens do not quite add up line by line (they can merge across a line break), so settle on the exact count.
    while kept_count and total_tokens(lines[len(lines) - kept_count :]) > max_prompt_tokens:
        kept_count -= 1
    while kept_count < len(lines) and total_tokens(lines[len(lines) - kept_count - 1 :]) <= max_prompt_tokens:
        kept_count += 1
    kept = lines[len(lines) - kept_count :] if kept_count else []
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": _user_text(header, kept, fact_lines, instruction)},
    ]


def context_lines(history: History, facts: Facts) -> list[ContextLine]:
    """Every history line up to the period's end, oldest first (alerts after the buckets of the same minute).

    A line reads `Sat 28 Nov 14:00 | East entrance | mean 120 peak 180 | Far side 100/150, Near side 20/30`, with
    `| over threshold 150` (or `| Far side over threshold 150`) when a peak exceeded its threshold and
    `| above usual 54` on a bucket the facts found unusual.
    """
    zone_info = ZoneInfo(history.timezone)
    period_start, period_end = history.period_start.astimezone(UTC), history.period_end.astimezone(UTC)
    ranks = {camera: rank for rank, camera in enumerate(dict.fromkeys(series.camera for series in history.series))}
    unusual = {(value.camera, value.at.astimezone(UTC)): value for value in facts.unusual}
    placed = []
    for slot in _camera_slots(history, period_end):
        text = _slot_text(slot, zone_info, unusual.get((slot.camera, slot.start)))
        line = ContextLine(slot.start >= period_start, text)
        placed.append(_PlacedLine(slot.start, False, ranks[slot.camera], line))
    for alert in history.alerts:
        raised = alert.raised_at.astimezone(UTC)
        if raised < period_end:
            line = ContextLine(raised >= period_start, _alert_text(alert, zone_info))
            placed.append(_PlacedLine(raised, True, ranks.get(alert.camera, len(ranks)), line))
    return [entry.line for entry in sorted(placed)]


@dataclass(frozen=True)
class _ZoneBucket:
    zone: str
    bucket: Bucket
    threshold: float | None


@dataclass
class _CameraSlot:
    """The buckets of one camera that start at one instant: its whole view's (None when that had no frames) and its
    zones'."""

    camera: str
    start: datetime  # UTC
    bucket: Bucket | None = None
    threshold: float | None = None  # the whole view's
    zones: list[_ZoneBucket] = field(default_factory=list)


@dataclass(frozen=True, order=True)
class _PlacedLine:
    """A context line and its place: by time, a bucket before an alert of the same minute, then by camera in the
    history's order (a camera with no series last)."""

    at: datetime
    is_alert: bool
    camera_rank: int
    line: ContextLine = field(compare=False)


def _camera_slots(history: History, period_end: datetime) -> list[_CameraSlot]:
    """The history's buckets that start before `period_end`, gathered by camera and start."""
    slots: dict[tuple[str, datetime], _CameraSlot] = {}
    for series in history.series:
        for bucket in series.buckets:
            start = bucket.start.astimezone(UTC)
            if start >= period_end:
                continue
            slot = slots.setdefault((series.camera, start), _CameraSlot(series.camera, start))
            if series.zone is None:
                slot.bucket, slot.threshold = bucket, series.threshold
            else:
                slot.zones.append(_ZoneBucket(series.zone, bucket, series.threshold))
    return list(slots.values())


def _slot_text(slot: _CameraSlot, zone_info: ZoneInfo, unusual: UnusualValue | None) -> str:
    local = slot.start.astimezone(zone_info)
    parts = [f"{format_day(local)} {format_time(local)}", slot.camera]
    bucket = slot.bucket
    parts.append(f"mean {format_people(bucket.mean)} peak {format_people(bucket.peak)}" if bucket else "no count")
    if slot.zones:
        parts.append(
            ", ".join(
                f"{zone.zone} {format_people(zone.bucket.mean)}/{format_people(zone.bucket.peak)}"
                for zone in slot.zones
            )
        )
    if bucket and slot.threshold is not None and bucket.peak > slot.threshold:
        parts.append(f"over threshold {format_people(slot.threshold)}")
    parts += [
        f"{zone.zone} over threshold {format_people(zone.threshold)}"
        for zone in slot.zones
        if zone.threshold is not None and zone.bucket.peak > zone.threshold
    ]
    if unusual is not None:
        parts.append(f"{unusual.direction} usual {format_people(unusual.usual)}")
    return " | ".join(parts)


def _alert_text(alert: AlertRecord, zone_info: ZoneInfo) -> str:
    local = alert.raised_at.astimezone(zone_info)
    where = alert.camera + (f" {alert.zone}" if alert.zone else "")
    return (
        f"{format_day(local)} {format_time(local)} | {where} | ALERT {format_people(alert.count)} people, "
        f"threshold {format_people(alert.threshold)}" + (", acknowledged" if alert.acknowledged else "")
    )


def _header(history: History, facts: Facts) -> str:
    cameras = []
    for camera in facts.cameras:
        description = camera.camera
        if camera.camera in history.sites:
            description += f" at {history.sites[camera.camera]}"
        zones = [zone.zone for zone in facts.zones_of(camera.camera) if zone.zone is not None]
        if zones:
            description += f" (zones {', '.join(zones)})"
        cameras.append(description)
    return (
        f"People counted by CCTV cameras from {format_time(facts.period_start)} on {format_day(facts.period_start)} "
        f"to {format_time(facts.period_end)} on {format_day(facts.period_end)}, {facts.timezone} time.\n"
        f"Cameras: {'; '.join(cameras)}.\n"
        "Lines read: time | camera | mean and peak people | zones as mean/peak."
    )


def _user_text(header: str, kept: list[ContextLine], fact_lines: list[str], instruction: str) -> str:
    sections = [header]
    earlier = [line.text for line in kept if not line.in_period]
    in_period = [line.text for line in kept if line.in_period]
    if earlier:
        sections.append("\n".join([EARLIER_HEADING, *earlier]))
    if in_period:
        sections.append("\n".join([PERIOD_HEADING, *in_period]))
    sections.append("\n".join([FACTS_HEADING, *fact_lines]))
    sections.append(instruction)
    return "\n\n".join(sections)


def _newest_lines_that_fit(lines: list[ContextLine], count_tokens: Callable[[str], int], budget: int) -> int:
    """How many of the newest lines fit in `budget` tokens, counting each line (and its heading) on its own."""
    used = sum(count_tokens(heading + "\n") for heading in (EARLIER_HEADING, PERIOD_HEADING)) + 2
    kept = 0
    for line in reversed(lines):
        used += count_tokens(line.text + "\n")
        if used > budget:
            break
        kept += 1
    return kept
