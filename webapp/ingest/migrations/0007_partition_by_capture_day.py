"""On PostgreSQL, frames, results and zone counts become tables partitioned by capture day (`webapp.ingest.partitions`):
each table is rebuilt as a partitioned one with the same columns, defaults, checks, indexes and foreign keys, its rows
copied over. A partitioned table's unique keys must hold the partition key, so the primary keys become (id,
captured_at) and Result's unique frame (its OneToOneField) becomes unique (frame, captured_at): Django's model state
still names one unique frame, which the database now guarantees together with the capture time that comes with it.
SQLite keeps the tables as they are. Not reversible on PostgreSQL."""

from django.db import migrations
from django.utils import timezone

from webapp.ingest import partitions

PARTITION_KEY = "captured_at"


def _fetch(cursor, sql: str, params: list) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def rebuild_partitioned(cursor, table: str) -> None:
    old = f"{table}_unpartitioned"
    constraints = _fetch(
        cursor,
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
        [table],
    )
    # Indexes that back no constraint (those come back with their constraints).
    indexes = _fetch(
        cursor,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        f"PARTITION BY RANGE ({PARTITION_KEY})"
    )
    cursor.execute(f"CREATE SEQUENCE {table}_id_partitioned_seq OWNED BY {table}.id")
    cursor.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_partitioned_seq')")
    cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    days = [
        row[0] for row in _fetch(cursor, f"SELECT DISTINCT ({PARTITION_KEY} AT TIME ZONE 'UTC')::date FROM {old}", [])
    ]
    for day in days:
        name = partitions.partition_name(table, day)
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {table} {partitions.bounds_clause(day)}")
    cursor.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    cursor.execute(f"SELECT setval('{table}_id_partitioned_seq', COALESCE((SELECT MAX(id) FROM {old}), 0) + 1, false)")
    cursor.execute(f"DROP TABLE {old}")
    cursor.execute(f"ALTER SEQUENCE {table}_id_partitioned_seq RENAME TO {table}_id_seq")
    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, {PARTITION_KEY})")
    for name, kind, definition in constraints:
        if kind == "u" and PARTITION_KEY not in definition:
            definition = definition.replace(")", f", {PARTITION_KEY})", 1)
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for (definition,) in indexes:
        cursor.execute(
            definition.replace(f" ON {old} ", f" ON {table} ").replace(f" ON public.{old} ", f" ON {table} ")
        )


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table in partitions.PARTITIONED_TABLES:
            rebuild_partitioned(cursor, table)
    partitions.prepare_days(timezone.now())


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("ingest", "0006_rollups_kept_as_counted"),
        # Their foreign keys to frames are gone: a partitioned table's rows cannot be referenced by id alone.
        ("alerts", "0006_frames_partitioned"),
        ("calibration", "0004_frames_partitioned"),
    ]

    operations = [migrations.RunPython(partition, migrations.RunPython.noop)]
