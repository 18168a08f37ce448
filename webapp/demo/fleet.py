"""A simulated fleet for measuring the platform at city scale (`manage.py simulate_fleet`, `scripts/fleet_bench.py`).

It writes cameras on sites and a history of counted frames as the workers would have left it (frames, results, zone
counts, quarter hours, latest counts, a few open alerts), without files: old frames' files are gone by retention
anyway, and a frame's count is what every page reads. Counts follow a day of two rush hours in each site's time zone
with noise, each camera at its own level; a few cameras are over their threshold now (with an open alert), a few went
silent an hour ago and a few have frames waiting to be counted, so an overview has something to put first.

PostgreSQL only, as a city's fleet runs: the rows go in with COPY into the day partitions, made first."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site, Zone
from webapp.ingest import partitions
from webapp.ingest.models import Frame, LatestCount, Result, ZoneCount
from webapp.ingest.rollups import add_to_quarter_hours, tally_counts

CAMERAS_PER_SITE = 100
NAME_PREFIX = "fleet-"
SITE_PREFIX = "Fleet site "
# Sites around the world, each on its own clock (two of them change it for summer, one on another date).
TIME_ZONES = ("Europe/Paris", "America/New_York", "Asia/Kolkata", "Asia/Shanghai", "Europe/London")
ZONE_SQUARE = [[0, 0], [960, 0], [960, 540], [0, 540]]
MODEL_VERSION = "csrnet-lite-mix3.pt@simulated000"
CONTENT_HASH = "0" * 64  # every frame has one; its length is what matters for the database's size
DONE = Frame.Status.DONE
# Every column without a null: Django keeps its defaults in Python, not in the tables. No files: their names are
# empty, and the API says they are not kept.
FRAME_COLUMNS = ["id", "camera_id", "captured_at", "received_at", "enqueued_at", "content_hash", "image", "width"]
FRAME_COLUMNS += ["height", "status", "error", "counted_on_gateway", "interruptions"]
FRAME_DEFAULTS = ("", 1920, 1080, DONE, "", False, 0)
RESULT_COLUMNS = ["id", "frame_id", "captured_at", "count", "model_name", "model_version", "created_at"]
RESULT_COLUMNS += ["density", "heatmap", "inference_ms"]
RESULT_DEFAULTS = ("", "", 310.0)


class FleetRefused(ValueError):
    """The simulator cannot run here; the message says why."""


@dataclass(frozen=True)
class FleetHistory:
    cameras: int
    frames: int
    seconds: float
    database_bytes: int


@dataclass(frozen=True)
class SimulatedCamera:
    pk: int
    zone: Zone | None
    level: float  # people at the busiest hour
    zone_share: float
    site_zone: ZoneInfo
    offset: int  # seconds after the fleet's frame times, so the cameras do not all send at once
    silent_since: datetime | None
    crowded_since: datetime | None  # from then on a third over its threshold, whatever the hour


def fleet_cameras(count: int, rng: random.Random) -> list[Camera]:
    """The fleet's cameras, `count` of them on sites of CAMERAS_PER_SITE: those of an earlier run, and new ones."""
    sites = []
    for index in range(math.ceil(count / CAMERAS_PER_SITE)):
        site, _ = Site.objects.get_or_create(
            name=f"{SITE_PREFIX}{index + 1:02d}", defaults={"time_zone": TIME_ZONES[index % len(TIME_ZONES)]}
        )
        sites.append(site)
    cameras = []
    for index in range(count):
        level = round(rng.lognormvariate(3.2, 0.8), 1)
        camera, created = Camera.objects.get_or_create(
            site=sites[index // CAMERAS_PER_SITE],
            name=f"{NAME_PREFIX}{index + 1:04d}",
            defaults={"place": f"street {index + 1}", "alert_threshold": round(level * 1.1, 1)},
        )
        if created and index % 3 == 0:
            Zone.objects.create(camera=camera, name="entrance", polygon=ZONE_SQUARE)
        cameras.append(camera)
    return cameras


def busyness(local_hour: float) -> float:
    """A working day: quiet at night, a morning and an evening rush, 0.1 to 1."""
    return min(
        1.0, 0.1 + 0.9 * math.exp(-(((local_hour - 8.5) / 1.5) ** 2)) + 0.8 * math.exp(-(((local_hour - 18) / 2) ** 2))
    )


def frame_times(start: datetime, end: datetime, every: int, offset: int) -> Iterator[datetime]:
    """Frame times in [start, end) on the fleet's grid of `every` seconds, shifted by `offset`."""
    first = math.ceil((start.timestamp() - offset) / every) * every + offset
    moment = first
    while moment < end.timestamp():
        yield datetime.fromtimestamp(moment, tz=UTC)
        moment += every


def simulate(cameras: int, days: float, every: int = 300, seed: int = 1) -> FleetHistory:
    """Give a fleet of `cameras` a history of `days` ending now, a frame every `every` seconds: a fleet that has
    history already is extended back in time, so a second call with more days adds the older ones."""
    if connection.vendor != "postgresql":
        raise FleetRefused(
            "the fleet simulator writes with PostgreSQL's COPY: set DATABASE_URL to a PostgreSQL database"
        )
    began = time.monotonic()
    rng = random.Random(seed)
    fleet = fleet_cameras(cameras, rng)
    now = timezone.now()
    oldest = Frame.objects.filter(camera__in=fleet).aggregate(oldest=Min("captured_at"))["oldest"]
    end, start = oldest or now, now - timedelta(days=days)
    simulated = [
        SimulatedCamera(
            pk=camera.pk,
            zone=next(iter(camera.zones.all()), None),
            level=camera.alert_threshold / 1.1,
            zone_share=rng.uniform(0.2, 0.5),
            site_zone=ZoneInfo(camera.site.time_zone),
            offset=(index * 37) % every,
            silent_since=now - timedelta(hours=1) if index % 100 == 42 else None,
            crowded_since=now - timedelta(minutes=20) if index % 50 == 7 else None,
        )
        for index, camera in enumerate(fleet)
    ]
    if start < end:
        partitions.create_day_partitions(
            (start + timedelta(days=offset)).astimezone(UTC).date()
            for offset in range(math.ceil((end - start).days) + 2)
        )
    frames, newest = 0, {}
    day = start
    while day < end:
        day_end = min(end, day + timedelta(days=1))
        with transaction.atomic():
            frames += write_history(simulated, day, day_end, every, rng, newest)
        day = day_end
    if oldest is None:
        with transaction.atomic():
            write_present(simulated, fleet, newest, now, every)
    return FleetHistory(len(fleet), frames, time.monotonic() - began, database_bytes())


Newest = dict[int, LatestCount]  # by camera id


def write_history(
    cameras: list[SimulatedCamera], start: datetime, end: datetime, every: int, rng: random.Random, newest: Newest
) -> int:
    """The counted frames of [start, end) of every camera, with their results, zone counts and quarter hours; each
    camera's newest count so far goes in `newest`."""
    frame_rows, result_rows, zone_rows, counts = [], [], [], []
    for camera in cameras:
        for moment in frame_times(
            start, end if camera.silent_since is None else min(end, camera.silent_since), every, camera.offset
        ):
            local = moment.astimezone(camera.site_zone)
            usual = camera.level * busyness(local.hour + local.minute / 60)
            if camera.crowded_since is not None and moment >= camera.crowded_since:
                usual = camera.level * 1.1 * 1.3
            count = max(0.0, round(usual * rng.uniform(0.9, 1.1), 2))
            frame_rows.append((camera.pk, moment))
            result_rows.append(count)
            counts.append((camera.pk, "", moment, count))
            if camera.zone is not None:
                zone_count = round(count * camera.zone_share, 2)
                zone_rows.append((len(frame_rows) - 1, camera.zone, zone_count))
                counts.append((camera.pk, camera.zone.name, moment, zone_count))
    frame_ids = reserve_ids(Frame, len(frame_rows))
    result_ids = reserve_ids(Result, len(frame_rows))
    zone_ids = reserve_ids(ZoneCount, len(zone_rows))
    received = timedelta(seconds=2)
    insert(
        Frame,
        FRAME_COLUMNS,
        (
            (frame_id, camera_id, moment, moment + received, moment + received, CONTENT_HASH, *FRAME_DEFAULTS)
            for frame_id, (camera_id, moment) in zip(frame_ids, frame_rows, strict=True)
        ),
    )
    insert(
        Result,
        RESULT_COLUMNS,
        (
            (result_id, frame_id, moment, count, "csrnet-lite", MODEL_VERSION, moment + received, *RESULT_DEFAULTS)
            for result_id, frame_id, (_, moment), count in zip(
                result_ids, frame_ids, frame_rows, result_rows, strict=True
            )
        ),
    )
    insert(
        ZoneCount,
        ["id", "result_id", "captured_at", "zone_id", "zone_name", "count"],
        (
            (zone_id, result_ids[row], frame_rows[row][1], zone.pk, zone.name, count)
            for zone_id, (row, zone, count) in zip(zone_ids, zone_rows, strict=True)
        ),
    )
    add_to_quarter_hours(tally_counts(counts))
    for frame_id, result_id, (camera_id, moment), count in zip(
        frame_ids, result_ids, frame_rows, result_rows, strict=True
    ):
        newest[camera_id] = LatestCount(
            camera_id=camera_id, frame_id=frame_id, result_id=result_id, captured_at=moment, count=count
        )
    return len(frame_rows)


def write_present(
    cameras: list[SimulatedCamera], fleet: list[Camera], newest: Newest, now: datetime, every: int
) -> None:
    """What the newest history leaves behind: each camera's latest count, an open alert for each camera over its
    threshold, and a few frames waiting to be counted."""
    LatestCount.objects.bulk_create(newest.values())
    thresholds = {camera.pk: camera.alert_threshold for camera in fleet}
    Alert.objects.bulk_create(
        Alert(
            camera_id=pk,
            threshold=thresholds[pk],
            value=latest.count,
            peak=latest.count,
            frame_id=latest.frame_id,
            raised_at=latest.captured_at,
        )
        for pk, latest in newest.items()
        if latest.count > thresholds[pk]
    )
    waiting = [camera for index, camera in enumerate(cameras) if index % 100 == 13]
    Frame.objects.bulk_create(
        Frame(
            camera_id=camera.pk,
            captured_at=now - timedelta(seconds=every * back),
            received_at=now - timedelta(seconds=every * back),
            content_hash=CONTENT_HASH,
            width=1920,
            height=1080,
        )
        for camera in waiting
        for back in range(1, 6)
    )


def reserve_ids(model: type, count: int) -> range:
    """`count` ids of `model`'s table that no one else will take, written explicitly by the inserts."""
    if not count:
        return range(0)
    sequence = f"pg_get_serial_sequence('{model._meta.db_table}', 'id')"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT setval({sequence}, nextval({sequence}) + %s)", [count - 1])
        last = cursor.fetchone()[0]
    return range(last - count + 1, last + 1)


def insert(model: type, columns: list[str], rows: Iterator[tuple]) -> None:
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def database_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0]
