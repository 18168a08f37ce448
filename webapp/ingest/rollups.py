"""What is kept up to date as each frame is counted, so that pages read the same few rows on day 1 and day 90:
quarter-hour counts per camera and zone (`QuarterHourCount`) and each camera's latest count (`LatestCount`).

Both are upserts in the counting transaction: a count is in its quarter hour exactly when its result is stored."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from webapp.ingest.models import LatestCount, QuarterHourCount, Result, ZoneCount
from webapp.ingest.series import QUARTER_HOUR, Tally, bucket_start

QuarterHourKey = tuple[int, str, datetime]  # camera id, zone name ("" for the whole view), quarter hour start


def tally_counts(counts: Iterable[tuple[int, str, datetime, float]]) -> dict[QuarterHourKey, Tally]:
    """(camera id, zone name, captured at, count) rows summed by quarter hour."""
    tallies: dict[QuarterHourKey, Tally] = defaultdict(Tally)
    for camera_id, zone_name, captured_at, count in counts:
        tallies[camera_id, zone_name, bucket_start(captured_at, QUARTER_HOUR)].add(1, count, count)
    return tallies


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def add_to_quarter_hours(tallies: dict[QuarterHourKey, Tally]) -> None:
    """Add `tallies` to their quarter hours, creating the rows that do not exist yet. Rows are written in key order,
    so two workers counting frames of one camera at once wait for each other instead of deadlocking."""
    if not tallies:
        return
    table = QuarterHourCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (camera_id, zone_name, start, frames, total, peak) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (camera_id, zone_name, start) DO UPDATE SET "
            f"frames = {table}.frames + excluded.frames, total = {table}.total + excluded.total, "
            f"peak = {_greatest()}({table}.peak, excluded.peak)",
            [
                (camera_id, zone_name, start, tally.frames, tally.total, tally.peak)
                for (camera_id, zone_name, start), tally in sorted(tallies.items())
            ],
        )


def recount_quarter_hour(camera_id: int, start: datetime) -> None:
    """Rebuild a camera's quarter hour (its own row and its zones') from the frames' results, after a recount changed
    one of them: a peak cannot be taken back by subtraction. Every frame of the quarter hour is still kept, since
    retention deletes whole days."""
    end = start + QUARTER_HOUR
    results = Result.objects.filter(frame__camera_id=camera_id, captured_at__gte=start, captured_at__lt=end)
    zones = ZoneCount.objects.filter(result__frame__camera_id=camera_id, captured_at__gte=start, captured_at__lt=end)
    tallies = tally_counts(
        [(camera_id, "", captured_at, count) for captured_at, count in results.values_list("captured_at", "count")]
        + [(camera_id, *row) for row in zones.values_list("zone_name", "captured_at", "count")]
    )
    QuarterHourCount.objects.filter(camera_id=camera_id, start=start).delete()
    add_to_quarter_hours(tallies)


def record_latest(camera_id: int, result: Result) -> None:
    """Make `result` its camera's latest count, unless a frame captured later was counted already."""
    table = LatestCount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (camera_id, frame_id, result_id, captured_at, count) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (camera_id) DO UPDATE SET frame_id = excluded.frame_id, result_id = excluded.result_id, "
            "captured_at = excluded.captured_at, count = excluded.count "
            f"WHERE {table}.captured_at <= excluded.captured_at",
            [camera_id, result.frame_id, result.pk, result.captured_at, result.count],
        )


def add_stored_results(results: Iterable[Result]) -> None:
    """Add results saved without `webapp.ingest.results.store_result` (bulk loads such as the tests' factories), with
    their zone counts as stored, to the quarter hours and their cameras' latest counts, as storing each one would
    have. Each result must carry its frame (`result.frame`) and must not have been added before."""
    results = list(results)
    if not results:
        return
    by_id = {result.pk: result for result in results}
    zone_rows = ZoneCount.objects.filter(
        result_id__in=list(by_id),
        captured_at__gte=min(result.captured_at for result in results),
        captured_at__lte=max(result.captured_at for result in results),
    ).values_list("result_id", "zone_name", "count")
    add_to_quarter_hours(
        tally_counts(
            [(result.frame.camera_id, "", result.captured_at, result.count) for result in results]
            + [(by_id[pk].frame.camera_id, name, by_id[pk].captured_at, count) for pk, name, count in zone_rows]
        )
    )
    newest: dict[int, Result] = {}
    for result in results:
        camera_id = result.frame.camera_id
        if camera_id not in newest or newest[camera_id].captured_at <= result.captured_at:
            newest[camera_id] = result
    for camera_id, result in sorted(newest.items()):
        record_latest(camera_id, result)
