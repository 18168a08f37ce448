"""Frames, results and zone counts partitioned by capture day (UTC) on PostgreSQL, so that retention drops whole days
and a day's queries read one day's tables however long the history is.

Each of the three tables has a partition per day, `<table>_pYYYYMMDD`, made ahead of time (`prepare_days`, run daily
by the retention job and by migration 0007), and a default partition `<table>_default` for rows of any day that has
none (a gateway sending frames captured long ago). A day's partition made after such rows arrived takes them over from
the default. On SQLite (the embedded default) the tables stay whole and every function here does nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction

log = logging.getLogger(__name__)

PARTITIONED_TABLES = ("ingest_frame", "ingest_result", "ingest_zonecount")
DAYS_AHEAD = 7


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day's [start, end) in UTC: its partition's range."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def bounds_clause(day: date) -> str:
    """The day partition's FOR VALUES clause. DDL takes no parameters: the bounds are literals, made here from a date,
    never from input."""
    start, end = day_bounds(day)
    return f"FOR VALUES FROM ('{start}') TO ('{end}')"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def day_partitions(table: str) -> dict[date, str]:
    """The day partitions of `table` that exist, by day (the default partition is not one)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
            "JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = %s",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    prefix = f"{table}_p"
    return {
        datetime.strptime(name.removeprefix(prefix), "%Y%m%d").date(): name for name in names if name.startswith(prefix)
    }


def create_day_partitions(days: Iterable[date]) -> list[str]:
    """Make the day partitions of `days` that are missing, each taking over its day's rows from the default
    partition; returns the partitions made. Each is made in a transaction of its own."""
    made = []
    for day in sorted(set(days)):
        for table in PARTITIONED_TABLES:
            if day in day_partitions(table):
                continue
            with transaction.atomic(), connection.cursor() as cursor:
                _create_day_partition(cursor, table, day)
            made.append(partition_name(table, day))
    if made:
        log.info("made %d day partitions, %s to %s", len(made), made[0], made[-1])
    return made


def _create_day_partition(cursor, table: str, day: date) -> None:
    """Attaching checks the default partition holds none of the day's rows, so they are moved out first; the lock
    keeps writers from adding one in between."""
    name, (start, end) = partition_name(table, day), day_bounds(day)
    cursor.execute(f"LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {table}_default WHERE captured_at >= %s AND captured_at < %s RETURNING *) "
        f"INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} {bounds_clause(day)}")


def prepare_days(now: datetime, ahead: int = DAYS_AHEAD) -> list[str]:
    """Make sure yesterday, today and the next `ahead` days (UTC) have their partitions; returns those made."""
    if not partitioned():
        return []
    today = now.astimezone(UTC).date()
    return create_day_partitions(today + timedelta(days=offset) for offset in range(-1, ahead + 1))


def expired_days(before: datetime) -> list[date]:
    """Days whose partitions hold only rows captured before `before` (their whole day ends by then), oldest first."""
    if not partitioned():
        return []
    days = set.intersection(*(set(day_partitions(table)) for table in PARTITIONED_TABLES))
    return sorted(day for day in days if day_bounds(day)[1] <= before)


def drop_day(day: date) -> None:
    """Drop a day's partitions of all three tables, in the caller's transaction."""
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of rows written earlier in this transaction would forbid the drop: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in reversed(PARTITIONED_TABLES):
            cursor.execute(f"DROP TABLE IF EXISTS {partition_name(table, day)}")
