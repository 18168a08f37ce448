"""Quarter-hour counts and each camera's latest count kept as frames are counted (`webapp.ingest.rollups`), in the
same transaction as the result, and rebuilt when a recount changes a frame's count."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.factories import frame_counted_by_worker
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame, LatestCount, QuarterHourCount
from webapp.ingest.results import Counted, replace_result

pytestmark = pytest.mark.django_db

QUARTER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SQUARE = [[0, 0], [64, 0], [64, 64], [0, 64]]


@pytest.fixture
def gate(camera) -> Zone:
    return Zone.objects.create(camera=camera, name="gate", polygon=SQUARE)


def quarter_hours(camera) -> list[tuple]:
    rows = QuarterHourCount.objects.filter(camera=camera).order_by("zone_name", "start")
    return list(rows.values_list("zone_name", "start", "frames", "total", "peak"))


def test_each_count_adds_to_its_quarter_hour_and_the_newest_is_the_latest(camera, gate):
    frame_counted_by_worker(camera, QUARTER + timedelta(minutes=1), 10.0, {gate: 2.0})
    newest = frame_counted_by_worker(camera, QUARTER + timedelta(minutes=14), 30.0, {gate: 5.0})
    frame_counted_by_worker(camera, QUARTER + timedelta(minutes=15), 4.0)
    frame_counted_by_worker(
        camera, QUARTER + timedelta(minutes=3), 50.0, {gate: 1.0}
    )  # late, and older than the newest
    assert quarter_hours(camera) == [
        ("", QUARTER, 3, 90.0, 50.0),
        ("", QUARTER + timedelta(minutes=15), 1, 4.0, 4.0),
        ("gate", QUARTER, 3, 8.0, 5.0),
    ]
    latest = LatestCount.objects.get(camera=camera)
    assert latest.captured_at == QUARTER + timedelta(minutes=15) and latest.count == 4.0
    assert latest.frame_id != newest.pk


def test_a_recount_rebuilds_its_quarter_hour_and_the_latest_count(camera, gate):
    first = frame_counted_by_worker(camera, QUARTER + timedelta(minutes=1), 10.0, {gate: 2.0})
    peak = frame_counted_by_worker(camera, QUARTER + timedelta(minutes=5), 40.0, {gate: 9.0})
    recounted = Counted(
        12.0, np.full((8, 8), 12.0 / 64, dtype=np.float32), {gate.pk: 3.0}, {gate.pk: "gate"}, "m", "v", 1.0
    )
    replace_result(Frame.objects.select_related("camera").get(pk=peak.pk), recounted)
    assert quarter_hours(camera) == [("", QUARTER, 2, 22.0, 12.0), ("gate", QUARTER, 2, 5.0, 3.0)]
    assert LatestCount.objects.get(camera=camera).count == 12.0
    replace_result(Frame.objects.select_related("camera").get(pk=first.pk), recounted)
    assert LatestCount.objects.get(camera=camera).count == 12.0  # the first frame was not the latest
    assert quarter_hours(camera)[0] == ("", QUARTER, 2, 24.0, 12.0)
