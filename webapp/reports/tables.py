"""The report page's tables, from what a report stored: its told sentences, its events and its facts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from llm_reports.events import KIND_LABELS, MUST_TELL
from llm_reports.facts import ends_within_day, format_day, format_time
from webapp.reports.models import Report


@dataclass(frozen=True)
class ToldRow:
    """A sentence of the narrative and where it came from."""

    text: str
    fact_id: str  # "" in a report written before the told sentences were stored
    kind: str
    how: str  # chosen by the model, or why code added it


@dataclass(frozen=True)
class EventRow:
    fact_id: str
    kind: str
    sentence: str
    told: bool


@dataclass(frozen=True)
class SeriesRow:
    """A camera (zone None) or zone of the stored facts."""

    camera: str
    zone: str | None
    site: str
    mean: float | None  # None: no counts in the period
    peak: float | None
    peak_at: str  # local: the time, with the day where the period is longer than one
    frames: int
    buckets: int
    threshold: float | None
    hours_over: float | None  # None without a threshold


@dataclass(frozen=True)
class SeriesTable:
    rows: list[SeriesRow]
    largest: float  # the highest peak of the rows, the scale of their bars; 0 without counts


def told_rows(report: Report) -> list[ToldRow]:
    """The narrative's sentences, each with its fact's id and kind and whether the model chose it."""
    if not report.told:
        return [ToldRow(text, "", "", "") for text in report.narrative()]
    events = {event["id"]: event for event in report.events}
    rows = []
    for sentence in report.told:
        event = events[sentence["fact_id"]]
        if sentence["chosen_by_model"]:
            how = "chosen by the model"
        else:
            how = "added: must tell" if event["importance"] >= MUST_TELL else "added: next in rank"
        rows.append(ToldRow(sentence["text"], sentence["fact_id"], KIND_LABELS[event["kind"]], how))
    return rows


def event_rows(report: Report) -> list[EventRow]:
    told = {sentence["fact_id"] for sentence in report.told}
    return [
        EventRow(event["id"], KIND_LABELS[event["kind"]], event["sentence"], event["id"] in told)
        for event in report.events
    ]


def series_table(facts: dict[str, Any], entries: Literal["cameras", "zones"]) -> SeriesTable:
    """The rows of stored facts (`Facts.as_dict()`) for `entries`: "cameras" or "zones"."""
    sites = {camera: site for camera, site in facts["sites"]}
    hours_per_bucket = facts["bucket_minutes"] / 60
    hours_over = {
        (breach["camera"], breach["zone"]): breach["count"] * hours_per_bucket for breach in facts["breaches"]
    }
    start = datetime.fromisoformat(facts["period_start"])
    one_day = ends_within_day(start, datetime.fromisoformat(facts["period_end"]))

    def shown(moment: str | None) -> str:
        if moment is None:
            return ""
        at = datetime.fromisoformat(moment)  # local to the report's time zone, as stored
        return format_time(at) if one_day else f"{format_time(at)} on {format_day(at)}"

    rows = [
        SeriesRow(
            camera=series["camera"],
            zone=series["zone"],
            site=sites.get(series["camera"], ""),
            mean=series["mean"],
            peak=series["peak"],
            peak_at=shown(series["peak_at"]),
            frames=series["frames"],
            buckets=series["buckets"],
            threshold=series["threshold"],
            hours_over=None if series["threshold"] is None else hours_over.get((series["camera"], series["zone"]), 0),
        )
        for series in facts[entries]
    ]
    return SeriesTable(rows, max((row.peak for row in rows if row.peak is not None), default=0))
