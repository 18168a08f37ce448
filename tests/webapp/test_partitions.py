"""Frames, results and zone counts partitioned by capture day on PostgreSQL (the tests' database): rows land in their
day's partition, a day made late takes its rows over from the default partition, and retention drops whole days."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.factories import frame_with_result
from webapp.alerts.models import Alert
from webapp.cameras.models import Zone
from webapp.ingest import partitions
from webapp.ingest.models import Frame, LatestCount, QuarterHourCount, Result, ZoneCount
from webapp.ingest.retention import expire_rows

pytestmark = pytest.mark.django_db

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


@pytest.fixture(autouse=True)
def on_postgresql():
    assert connection.vendor == "postgresql", "partitions exist on PostgreSQL only: run the tests with DATABASE_URL"


def partition_of(model, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_rows_land_in_their_days_partition_and_late_days_take_theirs_from_the_default(camera):
    today = timezone.now().astimezone(UTC).date()
    now_frame = frame_with_result(camera, timezone.now(), 4.0, {"gate": 1.0})
    assert partition_of(Frame, now_frame.pk) == partitions.partition_name("ingest_frame", today)
    assert partition_of(Result, now_frame.result.pk) == partitions.partition_name("ingest_result", today)
    assert partition_of(ZoneCount, now_frame.result.zone_counts.get().pk) == f"ingest_zonecount_p{today:%Y%m%d}"

    old_day = today - timedelta(days=40)
    old = frame_with_result(
        camera, datetime(old_day.year, old_day.month, old_day.day, 13, tzinfo=UTC), 7.0, {"gate": 2.0}
    )
    assert partition_of(Frame, old.pk) == "ingest_frame_default"
    made = partitions.create_day_partitions([old_day])
    assert made == [partitions.partition_name(table, old_day) for table in partitions.PARTITIONED_TABLES]
    assert partition_of(Frame, old.pk) == partitions.partition_name("ingest_frame", old_day)
    assert partition_of(ZoneCount, old.result.zone_counts.get().pk) == f"ingest_zonecount_p{old_day:%Y%m%d}"
    assert Frame.objects.get(pk=old.pk).result.count == 7.0
    assert partitions.create_day_partitions([old_day]) == []


def test_the_coming_days_are_made_ahead():
    now = timezone.now() + timedelta(days=30)
    made = partitions.prepare_days(now, ahead=2)
    assert len(made) == 4 * len(partitions.PARTITIONED_TABLES)  # yesterday, the day, and two ahead
    assert partitions.prepare_days(now, ahead=2) == []


def test_retention_drops_whole_days_and_lets_go_of_what_pointed_at_their_frames(settings, camera, capsys):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 90
    gate = Zone.objects.create(camera=camera, name="gate", polygon=SQUARE)
    old_day = (timezone.now() - timedelta(days=100)).astimezone(UTC).date()
    partitions.create_day_partitions([old_day])
    start, _ = partitions.day_bounds(old_day)
    old = [frame_with_result(camera, start + timedelta(minutes=10 * n), float(n), {gate: 1.0}) for n in range(12)]
    kept = frame_with_result(camera, timezone.now() - timedelta(days=89), 3.0)
    alert = Alert.objects.create(camera=camera, threshold=5, value=6, peak=9, frame=old[6], raised_at=start)
    quarter_hours = list(QuarterHourCount.objects.filter(camera=camera).values_list("start", "zone_name", "total"))

    dry = expire_rows(timezone.now(), dry_run=True)
    assert (dry.frames, dry.whole_days) == (12, 1)
    assert partitions.partition_name("ingest_frame", old_day) in partitions.day_partitions("ingest_frame").values()

    expired = expire_rows(timezone.now())
    assert str(expired).startswith("frame rows older than 90 days: 12 frames deleted (1 whole days dropped)")
    for table in partitions.PARTITIONED_TABLES:
        assert old_day not in partitions.day_partitions(table)
    assert not Frame.objects.filter(pk__in=[frame.pk for frame in old]).exists()
    assert Frame.objects.filter(pk=kept.pk).exists()
    alert.refresh_from_db()
    assert alert.frame_id is None and alert.value == 6
    assert list(QuarterHourCount.objects.filter(camera=camera).values_list("start", "zone_name", "total")) == (
        quarter_hours
    )
    assert LatestCount.objects.get(camera=camera).frame_id == kept.pk


def test_a_camera_whose_latest_frame_expires_has_no_latest_count(settings, camera):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 90
    frame_with_result(camera, timezone.now() - timedelta(days=95), 3.0)
    assert LatestCount.objects.filter(camera=camera).exists()
    expire_rows(timezone.now())
    assert not LatestCount.objects.filter(camera=camera).exists()
