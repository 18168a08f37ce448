"""The audit log as CSV, oldest entry first, for a period: `?since=` and `?until=` (both optional), each a date (whole
days on the server's clock, TIME_ZONE; `until` a date includes that day) or an ISO 8601 time (`until` excluded)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, time, timedelta

from auditlog import get_logentry_model
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

COLUMNS = ("time", "actor", "address", "object type", "object id", "object", "action", "changes", "details")
# A cell starting with one of these is a formula to a spreadsheet: an object named "=HYPERLINK(...)" must stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class PeriodError(ValueError):
    """A `since` or `until` that is neither a date nor an ISO 8601 time; its message says which and why."""


def period_bound(name: str, text: str, is_end: bool) -> datetime | None:
    """The instant `text` (a query parameter called `name`) names, None when empty: a date is the start of that day
    on the server's clock, or of the next day for an end (so the day is included); a time without an offset is on the
    server's clock."""
    if not text:
        return None
    try:
        day = parse_date(text)  # first: parse_datetime reads a date as its midnight
        moment = None if day else parse_datetime(text)
    except ValueError as error:  # well formed, but no such date or time (2026-02-30)
        raise PeriodError(f"{name}={text!r}: {error}") from None
    if moment is None and day is None:
        raise PeriodError(f"{name}={text!r} is neither a date (2026-12-01) nor an ISO 8601 time (2026-12-01T08:30Z)")
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if is_end else day, time())
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def entries_between(since: datetime | None, until: datetime | None) -> QuerySet:
    """Audit entries at or after `since` and before `until`, oldest first."""
    entries = get_logentry_model().objects.select_related("content_type", "actor").order_by("timestamp", "pk")
    if since is not None:
        entries = entries.filter(timestamp__gte=since)
    if until is not None:
        entries = entries.filter(timestamp__lt=until)
    return entries


def as_text(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def entry_row(entry) -> list[str]:
    """One entry as the CSV's cells (COLUMNS): the time in UTC, the actor's user name (empty: no person, e.g. a
    worker), the client's address, the object's type (app.model), id and name as it was, the action, and the
    changes ({field: [before, after]}; many-to-many: {field: {operation, objects}}) and details as JSON."""
    actor = entry.actor.get_username() if entry.actor else (entry.actor_email or "")
    return [
        entry.timestamp.astimezone(UTC).isoformat(),
        as_text(actor),
        entry.remote_addr or "",
        f"{entry.content_type.app_label}.{entry.content_type.model}",
        entry.object_pk,
        as_text(entry.object_repr),
        entry.get_action_display(),
        json.dumps(entry.changes_dict, ensure_ascii=False, sort_keys=True),
        as_text(json.dumps(entry.additional_data, ensure_ascii=False, sort_keys=True)) if entry.additional_data else "",
    ]


class _Line:
    """What csv.writer writes to: hands each line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(entries: Iterable) -> Iterator[str]:
    """The header and one line an entry, as they are read (a streamed response holds no whole log in memory)."""
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for entry in entries:
        yield writer.writerow(entry_row(entry))
