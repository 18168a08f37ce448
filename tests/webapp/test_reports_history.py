"""webapp.reports.history: the report's hourly series built from stored results, and a local day as a period."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from llm_reports.history import Bucket
from tests.factories import frame_with_result
from webapp.cameras.models import Camera, Site, Zone
from webapp.ingest.models import Frame
from webapp.reports.history import LOOKBACK_DAYS, build_history, day_period

TIMEZONE = "Asia/Shanghai"  # UTC+8: a local hour's UTC date is often the day before
LOCAL = ZoneInfo(TIMEZONE)
REPORT_DAY = date(2026, 11, 28)
SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def local(day: date, hour: int, minute: int = 0, second: int = 0, zone: ZoneInfo = LOCAL) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)


def report_day(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return local(REPORT_DAY, hour, minute, second)


def buckets_of(history, camera: str, zone: str | None = None) -> list[Bucket]:
    (series,) = [series for series in history.series if (series.camera, series.zone) == (camera, zone)]
    return series.buckets


def counted_in_zones(camera: Camera, captured_at: datetime, count: float, zones: dict[str, float]) -> Frame:
    """A counted frame whose zone counts go by name only, as they stay once a zone is deleted."""
    return frame_with_result(camera, captured_at, count, dict(zones))


@pytest.fixture
def sites(db) -> tuple[Site, Site]:
    return Site.objects.create(name="North Hall"), Site.objects.create(name="South Hall")


@pytest.fixture
def cameras(sites) -> dict[str, Camera]:
    """Two cameras named "Entrance" at different sites, one more at the first site, and one with no site."""
    north, south = sites
    return {
        "north": Camera.objects.create(site=north, name="Entrance", alert_threshold=50),
        "south": Camera.objects.create(site=south, name="Entrance"),
        "platform": Camera.objects.create(site=north, name="Platform", alert_threshold=80),
        "roof": Camera.objects.create(name="Roof"),
    }


@pytest.fixture
def zones(cameras) -> tuple[Zone, Zone]:
    north = cameras["north"]
    return (
        Zone.objects.create(camera=north, name="Left", polygon=SQUARE, alert_threshold=20),
        Zone.objects.create(camera=north, name="Right", polygon=SQUARE),
    )


@pytest.fixture
def period() -> tuple[datetime, datetime]:
    return day_period(REPORT_DAY, TIMEZONE)


@pytest.fixture
def stored(cameras, zones, period):
    """Results of the north entrance around the report day and its lookback, and one of the south entrance."""
    left, right = zones
    north, south = cameras["north"], cameras["south"]
    start, end = period
    # Three frames in local 09:00-10:00: counts 10, 20, 36 (mean 22, peak 36); Left 4, 8, 12; Right 6, 12, 24.
    frame_with_result(north, report_day(9, 5), 10.0, {left: 4.0, right: 6.0})
    frame_with_result(north, report_day(9, 20), 20.0, {left: 8.0, right: 12.0})
    frame_with_result(north, report_day(9, 59, 59), 36.0, {left: 12.0, right: 24.0})
    frame_with_result(north, report_day(10), 50.0, {left: 30.0, right: 20.0})
    frame_with_result(north, report_day(7, 30), 9.0)  # 23:30 UTC on the day before
    frame_with_result(north, start, 5.0)  # the period's first instant
    frame_with_result(north, end - timedelta(seconds=1), 7.0)  # its last second, 23:59:59 local
    frame_with_result(north, end, 999.0)  # the next day: outside the period
    frame_with_result(north, local(REPORT_DAY - timedelta(days=7), 9, 30), 15.0)  # a week before
    frame_with_result(north, start - timedelta(days=LOOKBACK_DAYS), 3.0)  # the first instant of the lookback
    frame_with_result(north, start - timedelta(days=LOOKBACK_DAYS, seconds=1), 888.0)  # just before it
    counted_in_zones(north, report_day(11), 40.0, {"Stairs": 6.0})  # a zone deleted since
    # A frame received but never counted in the same hour as the three above.
    Frame.objects.create(camera=north, captured_at=report_day(9, 30), content_hash="1" * 64, width=1024, height=768)
    frame_with_result(south, report_day(9, 10), 100.0)


def test_a_day_period_is_the_local_calendar_day(period):
    start, end = period
    assert start == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
    assert start.astimezone(LOCAL).date() == REPORT_DAY


@pytest.mark.parametrize(
    ("day", "hours", "offsets"),
    [
        (date(2026, 3, 29), 23, (1, 2)),  # clocks go forward at 02:00
        (date(2026, 10, 25), 25, (2, 1)),  # clocks go back at 03:00
        (date(2026, 6, 15), 24, (2, 2)),
    ],
)
def test_a_day_period_is_23_or_25_hours_long_when_the_clocks_change(day, hours, offsets):
    start, end = day_period(day, "Europe/Paris")
    # Differences between aware datetimes of one tzinfo are wall-clock differences: compare in UTC.
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)
    assert (start.utcoffset(), end.utcoffset()) == tuple(timedelta(hours=offset) for offset in offsets)
    assert (start.time(), end.time(), end.date()) == (datetime.min.time(), datetime.min.time(), day + timedelta(days=1))


def test_each_camera_has_a_series_and_each_counted_zone_one_after_it(cameras, stored, period):
    history = build_history(list(cameras.values()), *period, TIMEZONE)

    assert [(series.camera, series.zone) for series in history.series] == [
        ("North Hall / Entrance", None),
        ("North Hall / Entrance", "Left"),
        ("North Hall / Entrance", "Right"),
        ("North Hall / Entrance", "Stairs"),
        ("South Hall / Entrance", None),
        ("Platform", None),
        ("Roof", None),
    ]
    assert buckets_of(history, "Platform") == [] and buckets_of(history, "Roof") == []


def test_the_history_describes_its_period(cameras, stored, period):
    history = build_history([cameras["north"]], *period, TIMEZONE)
    assert (history.period_start, history.period_end) == period
    assert (history.timezone, history.bucket_minutes, history.alerts) == (TIMEZONE, 60, [])


def test_cameras_sharing_a_name_are_told_apart_by_their_site(cameras, period):
    history = build_history([cameras["north"], cameras["south"], cameras["platform"]], *period, TIMEZONE)
    assert history.cameras() == ["North Hall / Entrance", "Platform", "South Hall / Entrance"]


def test_a_name_is_plain_when_no_other_reported_camera_shares_it(cameras, period):
    history = build_history([cameras["north"], cameras["platform"]], *period, TIMEZONE)
    assert history.cameras() == ["Entrance", "Platform"]
    assert history.sites == {"Entrance": "North Hall", "Platform": "North Hall"}


def test_sites_map_each_camera_with_a_site_to_it(cameras, period):
    history = build_history(list(cameras.values()), *period, TIMEZONE)
    assert history.sites == {
        "North Hall / Entrance": "North Hall",
        "South Hall / Entrance": "South Hall",
        "Platform": "North Hall",
    }


def test_thresholds_come_from_the_camera_and_its_zones(cameras, stored, period):
    history = build_history(list(cameras.values()), *period, TIMEZONE)
    thresholds = {(series.camera, series.zone): series.threshold for series in history.series}
    assert thresholds == {
        ("North Hall / Entrance", None): 50.0,
        ("North Hall / Entrance", "Left"): 20.0,
        ("North Hall / Entrance", "Right"): None,
        ("North Hall / Entrance", "Stairs"): None,  # the zone is gone: its counts stay, with no threshold
        ("South Hall / Entrance", None): None,
        ("Platform", None): 80.0,
        ("Roof", None): None,
    }


def test_buckets_are_local_hours_with_the_mean_peak_and_number_of_frames(cameras, stored, period):
    history = build_history(list(cameras.values()), *period, TIMEZONE)

    north = {bucket.start: bucket for bucket in buckets_of(history, "North Hall / Entrance")}
    # The uncounted frame at 09:30 is no part of the 09:00 bucket.
    assert north[report_day(9)] == Bucket(report_day(9), 22.0, 36.0, 3)
    assert north[report_day(10)] == Bucket(report_day(10), 50.0, 50.0, 1)
    assert north[report_day(7)] == Bucket(report_day(7), 9.0, 9.0, 1)
    assert buckets_of(history, "North Hall / Entrance", "Left")[-2:] == [
        Bucket(report_day(9), 8.0, 12.0, 3),
        Bucket(report_day(10), 30.0, 30.0, 1),
    ]
    assert buckets_of(history, "North Hall / Entrance", "Right")[-2:] == [
        Bucket(report_day(9), 14.0, 24.0, 3),
        Bucket(report_day(10), 20.0, 20.0, 1),
    ]
    assert buckets_of(history, "North Hall / Entrance", "Stairs") == [Bucket(report_day(11), 6.0, 6.0, 1)]
    # The other camera's result in the same hour makes a bucket of its own.
    assert buckets_of(history, "South Hall / Entrance") == [Bucket(report_day(9), 100.0, 100.0, 1)]


def test_buckets_come_oldest_first_from_the_lookback_to_the_end_of_the_period(cameras, stored, period):
    start, end = period
    history = build_history([cameras["north"]], *period, TIMEZONE)

    starts = [bucket.start for bucket in buckets_of(history, "Entrance")]
    assert starts == [
        start - timedelta(days=LOOKBACK_DAYS),
        local(REPORT_DAY - timedelta(days=7), 9),
        report_day(0),
        report_day(7),
        report_day(9),
        report_day(10),
        report_day(11),
        report_day(23),
    ]
    assert all(moment < end for moment in starts)
    assert [bucket.start.astimezone(LOCAL).hour for bucket in buckets_of(history, "Entrance")] == [
        0,
        9,
        0,
        7,
        9,
        10,
        11,
        23,
    ]


def test_nothing_before_the_lookback_or_from_the_end_of_the_period_is_included(cameras, stored, period):
    history = build_history([cameras["north"]], *period, TIMEZONE)

    peaks = [bucket.peak for series in history.series for bucket in series.buckets]
    assert 999.0 not in peaks and 888.0 not in peaks
    first, last = buckets_of(history, "Entrance")[0], buckets_of(history, "Entrance")[-1]
    assert (first.peak, first.frames) == (3.0, 1)
    assert (last.start, last.peak, last.frames) == (report_day(23), 7.0, 1)


def test_a_shorter_lookback_starts_the_history_later(cameras, stored, period):
    history = build_history([cameras["north"]], *period, TIMEZONE, lookback_days=7)
    assert buckets_of(history, "Entrance")[0].start == local(REPORT_DAY - timedelta(days=7), 9)


def test_an_hour_is_a_local_hour_where_the_offset_is_not_a_whole_hour(sites):
    """In Kolkata (UTC+05:30) 09:10 and 09:40 are one local hour, but 03:40 and 04:10 UTC: one bucket, not two."""
    kolkata = ZoneInfo("Asia/Kolkata")
    camera = Camera.objects.create(site=sites[0], name="Ghat")
    frame_with_result(camera, local(REPORT_DAY, 9, 10, zone=kolkata), 10.0)
    frame_with_result(camera, local(REPORT_DAY, 9, 40, zone=kolkata), 30.0)

    history = build_history([camera], *day_period(REPORT_DAY, "Asia/Kolkata"), "Asia/Kolkata")

    assert buckets_of(history, "Ghat") == [Bucket(local(REPORT_DAY, 9, zone=kolkata), 20.0, 30.0, 2)]


def hourly_frames(camera: Camera, day: date, timezone: str) -> list[datetime]:
    """One counted frame at the first minute of every real hour of a local day; its count is the hour's index."""
    start, end = (moment.astimezone(UTC) for moment in day_period(day, timezone))
    moments = []
    while start < end:
        moments.append(start + timedelta(minutes=1))
        frame_with_result(camera, moments[-1], float(len(moments)))
        start += timedelta(hours=1)
    return moments


def test_a_day_that_loses_an_hour_has_23_hourly_buckets(sites):
    camera = Camera.objects.create(site=sites[0], name="Quai")
    moments = hourly_frames(camera, date(2026, 3, 29), "Europe/Paris")

    history = build_history([camera], *day_period(date(2026, 3, 29), "Europe/Paris"), "Europe/Paris")

    buckets = buckets_of(history, "Quai")
    assert len(moments) == len(buckets) == 23
    assert [bucket.start.astimezone(ZoneInfo("Europe/Paris")).hour for bucket in buckets] == [0, 1, *range(3, 24)]
    assert [bucket.frames for bucket in buckets] == [1] * 23


def test_a_day_that_gains_an_hour_has_25_hourly_buckets(sites):
    """The two 02:00 hours of the day the clocks go back are two buckets, each with its own frame."""
    camera = Camera.objects.create(site=sites[0], name="Quai")
    moments = hourly_frames(camera, date(2026, 10, 25), "Europe/Paris")

    history = build_history([camera], *day_period(date(2026, 10, 25), "Europe/Paris"), "Europe/Paris")

    buckets = buckets_of(history, "Quai")
    assert len(moments) == 25
    assert [bucket.frames for bucket in buckets] == [1] * 25
    assert [bucket.start for bucket in buckets] == [moment - timedelta(minutes=1) for moment in moments]


def test_the_periods_people_alerts_come_with_the_history(cameras, zones, period):
    from webapp.alerts.models import Alert

    left, _ = zones
    north = cameras["north"]
    start, end = period

    def alert(at: datetime, **fields) -> Alert:
        frame = frame_with_result(north, at, 60.0)
        defaults = {"threshold": 50, "value": 60, "peak": 70}
        return Alert.objects.create(camera=north, frame=frame, raised_at=at, **{**defaults, **fields})

    alert(report_day(9, 15))
    alert(report_day(18), zone=left, zone_name="Left", threshold=20, value=25, state=Alert.State.ACKNOWLEDGED)
    alert(report_day(12), kind=Alert.Kind.DENSITY, threshold=2, value=2.5)  # people per m²: not a count
    alert(start - timedelta(seconds=1))  # the day before
    alert(end)  # the next day

    history = build_history(list(cameras.values()), start, end, TIMEZONE)

    assert [(a.camera, a.zone, a.raised_at, a.count, a.threshold, a.acknowledged) for a in history.alerts] == [
        ("North Hall / Entrance", None, report_day(9, 15), 60, 50, False),
        ("North Hall / Entrance", "Left", report_day(18), 25, 20, True),
    ]
