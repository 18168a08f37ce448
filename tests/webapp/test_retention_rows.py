"""Retention of rows by age against the real database: old frames are deleted while their counts stay in the
quarter-hour counts kept as they were counted, so every series of 15 minutes or longer, the CSV and the reports'
history read the same before and after. Whole days go as partitions: tests/webapp/test_partitions.py."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import frame_with_result, queued_frame
from tests.stored_media import stored_files
from webapp.alerts.models import Alert
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame, QuarterHourCount
from webapp.reports.history import build_history, day_period
from workers.tasks import expire_by_age

pytestmark = pytest.mark.django_db

REPORT_ZONE = "Asia/Kolkata"  # UTC+5:30: its hours begin half way through hours of UTC
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


@pytest.fixture
def keep_rows_90_days(settings):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 90
    settings.CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = settings.CROWDSCOPE_KEEP_HEATMAPS_DAYS = 0
    settings.CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = 0


@pytest.fixture
def gate(camera) -> Zone:
    return Zone.objects.create(camera=camera, name="gate", polygon=SQUARE)


def old_day() -> date:
    return (timezone.now() - timedelta(days=100)).astimezone(UTC).date()


def fill_day(camera, gate: Zone, day: date) -> list[Frame]:
    """Frames every 7 minutes over a day, with counts and zone counts that vary within each quarter hour."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [
        frame_with_result(camera, start + timedelta(minutes=7 * n), float(n % 11 * 3 + n % 4), {gate: float(n % 5)})
        for n in range(24 * 60 // 7)
    ]


def counts(api, camera, start: datetime, end: datetime, bucket: str, **params):
    query = {"from": start.isoformat(), "to": end.isoformat(), "bucket": bucket, **params}
    return api.get(f"/api/v1/cameras/{camera.pk}/counts/", query)


def rounded(points: list[dict]) -> list[dict]:
    """Points with their numbers rounded: sums taken in another order differ in the last bits."""
    return [
        {
            **point,
            "mean": round(point["mean"], 9),
            "zones": {name: {"mean": round(z["mean"], 9), "peak": z["peak"]} for name, z in point["zones"].items()},
        }
        for point in points
    ]


def test_old_frames_go_and_longer_series_read_the_same(keep_rows_90_days, camera, gate, api, small_jpeg_bytes, capsys):
    day = old_day()
    old = fill_day(camera, gate, day)
    recent = fill_day(camera, gate, (timezone.now() - timedelta(days=10)).date())
    alert = Alert.objects.create(
        camera=camera, threshold=30, value=31, peak=33, frame=old[40], raised_at=old[40].captured_at
    )
    queued = queued_frame(camera, small_jpeg_bytes, captured_at=old[0].captured_at + timedelta(seconds=30))
    start, end = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1), timezone.now()
    before = {bucket: counts(api, camera, start, end, bucket).json()["points"] for bucket in ("15m", "1h", "1d")}
    csv_before = counts(api, camera, start, end, "1h", format="csv").content
    period = day_period(day, REPORT_ZONE)
    history_before = build_history([camera], *period, REPORT_ZONE)
    assert stored_files()

    call_command("expire_by_age")

    quarters = 24 * 4
    said = capsys.readouterr().out
    assert (
        f"freed: frame rows older than 90 days: {len(old) + 1:,} frames deleted (0 whole days dropped), 1 files" in said
    )
    assert not Frame.objects.filter(pk__in=[frame.pk for frame in old] + [queued.pk]).exists()
    assert Frame.objects.filter(pk__in=[frame.pk for frame in recent]).count() == len(recent)
    assert stored_files() == []
    kept_quarters = QuarterHourCount.objects.filter(camera=camera, zone_name="", start__lt=recent[0].captured_at)
    assert kept_quarters.count() == quarters
    first = QuarterHourCount.objects.get(camera=camera, zone_name="", start=old[0].captured_at)
    first_counts = [
        frame.result.count for frame in old if frame.captured_at < old[0].captured_at + timedelta(minutes=15)
    ]
    assert (first.frames, first.total, first.peak) == (len(first_counts), sum(first_counts), max(first_counts))
    alert.refresh_from_db()
    assert alert.frame is None and alert.value == 31

    for bucket, points in before.items():
        after = counts(api, camera, start, end, bucket)
        assert after.status_code == 200
        assert rounded(after.json()["points"]) == rounded(points), bucket
    assert counts(api, camera, start, end, "1h", format="csv").content == csv_before
    history_after = build_history([camera], *period, REPORT_ZONE)
    assert [(s.camera, s.zone) for s in history_after.series] == [(s.camera, s.zone) for s in history_before.series]
    for series_after, series_before in zip(history_after.series, history_before.series, strict=True):
        assert len(series_after.buckets) == len(series_before.buckets) > 12
        for bucket_after, bucket_before in zip(series_after.buckets, series_before.buckets, strict=True):
            assert bucket_after.start == bucket_before.start
            assert (bucket_after.frames, bucket_after.peak) == (bucket_before.frames, bucket_before.peak)
            assert bucket_after.mean == pytest.approx(bucket_before.mean)

    # What was folded is no longer there frame by frame: a clear 400 that says from when.
    for bucket in ("raw", "1m"):
        refused = counts(api, camera, start, end, bucket)
        assert refused.status_code == 400
        assert "kept only as quarter-hour counts; ask for a bucket of 15m, 1h or 1d" in refused.json()["bucket"][0]
    recent_range = (recent[0].captured_at, recent[-1].captured_at + timedelta(minutes=1))
    assert len(counts(api, camera, *recent_range, "raw").json()["points"]) == len(recent)


def test_a_frame_late_into_an_expired_quarter_hour_adds_to_it(keep_rows_90_days, camera, gate):
    quarter = datetime.combine(old_day(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    frame_with_result(camera, quarter + timedelta(minutes=1), 10.0, {gate: 2.0})
    assert expire_by_age.apply().get()[0].startswith("frame rows older than 90 days: 1 frames deleted ")
    frame_with_result(camera, quarter + timedelta(minutes=14), 30.0, {gate: 1.0})
    frame_with_result(camera, quarter + timedelta(minutes=15), 5.0)  # the next quarter hour
    expire_by_age.apply().get()
    rows = QuarterHourCount.objects.filter(camera=camera).values_list("zone_name", "start", "frames", "total", "peak")
    assert sorted(rows) == [
        ("", quarter, 2, 40.0, 30.0),
        ("", quarter + timedelta(minutes=15), 1, 5.0, 5.0),
        ("gate", quarter, 2, 3.0, 2.0),
    ]
    assert not Frame.objects.filter(camera=camera).exists()
    assert expire_by_age.apply().get()[0].startswith("frame rows older than 90 days: 0 frames deleted ")


def test_a_dry_run_counts_and_deletes_nothing(keep_rows_90_days, camera, gate, capsys):
    quarter = datetime.combine(old_day(), datetime.min.time(), tzinfo=UTC)
    frames = [frame_with_result(camera, quarter + timedelta(minutes=m), 3.0, {gate: 1.0}) for m in (0, 5, 20)]
    call_command("expire_by_age", "--dry-run")
    said = capsys.readouterr().out
    assert "would free: frame rows older than 90 days: 3 frames deleted (0 whole days dropped), 0 files" in said
    assert Frame.objects.filter(pk__in=[frame.pk for frame in frames]).count() == 3
    assert QuarterHourCount.objects.filter(camera=camera, zone_name="").count() == 2


def test_rows_kept_for_ever_are_not_touched(settings, camera, capsys):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 0
    settings.CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = settings.CROWDSCOPE_KEEP_HEATMAPS_DAYS = 0
    settings.CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = 0
    frame = frame_with_result(camera, timezone.now() - timedelta(days=4000), 3.0)
    call_command("expire_by_age")
    assert "nothing expires" in capsys.readouterr().out
    assert Frame.objects.filter(pk=frame.pk).exists()
