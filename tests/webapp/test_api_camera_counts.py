"""GET /api/v1/cameras/{id}/counts/: a camera's counts over a window, raw or in buckets with mean and peak."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import frame_with_result, token_client, user_with_role
from webapp.accounts.roles import Role
from webapp.cameras.models import Zone

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)  # a Monday, 08:00 UTC


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def zones(camera):
    return (
        Zone.objects.create(camera=camera, name="east", polygon=[[0, 0], [512, 0], [512, 768], [0, 768]]),
        Zone.objects.create(camera=camera, name="west", polygon=[[512, 0], [1024, 0], [1024, 768], [512, 768]]),
    )


@pytest.fixture
def series(camera, zones):
    """Counts at known times over two days, created out of order; zone counts are (east, west)."""
    east, west = zones
    counts = {
        # minutes after T0: (count, east, west)
        20: (30.0, 10.0, 20.0),
        0: (10.0, 4.0, 6.0),
        5: (20.0, 8.0, 12.0),
        14.99: (12.0, 5.0, 7.0),
        15: (40.0, 30.0, 10.0),
        70: (7.0, 3.0, 4.0),
        24 * 60 + 1: (100.0, 50.0, 50.0),
    }
    for minutes, (count, east_count, west_count) in counts.items():
        frame_with_result(camera, at(minutes), count, {east: east_count, west: west_count})
    return counts


def get_counts(api, camera, **params):
    return api.get(f"/api/v1/cameras/{camera.pk}/counts/", params)


def test_raw_points_come_in_time_order_with_their_zones(api, camera, series):
    response = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(2 * 24 * 60))})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["camera"] == camera.pk and body["bucket"] == "raw"
    points = body["points"]
    times = [datetime.fromisoformat(point["time"]) for point in points]
    assert times == [at(minutes) for minutes in sorted(series)]
    assert [point["count"] for point in points] == [series[minutes][0] for minutes in sorted(series)]
    assert points[0]["zones"] == {"east": 4.0, "west": 6.0}
    assert len({point["frame"] for point in points}) == len(series)


def test_the_window_includes_from_and_excludes_to(api, camera, series):
    response = get_counts(api, camera, **{"from": iso(at(5)), "to": iso(at(15))})
    assert response.status_code == 200
    times = [datetime.fromisoformat(point["time"]) for point in response.json()["points"]]
    assert times == [at(5), at(14.99)]


def test_the_window_defaults_to_the_last_day(api, camera):
    frame_with_result(camera, timezone.now() - timedelta(hours=1), 5.0)
    frame_with_result(camera, timezone.now() - timedelta(hours=25), 9.0)
    response = get_counts(api, camera)
    assert response.status_code == 200
    assert [point["count"] for point in response.json()["points"]] == [5.0]


def test_only_counted_frames_of_this_camera_are_listed(api, camera, other_camera, series):
    frame_with_result(other_camera, at(10), 999.0)
    response = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(60))})
    assert 999.0 not in [point["count"] for point in response.json()["points"]]


def buckets(response) -> dict[datetime, dict]:
    assert response.status_code == 200, response.content
    return {datetime.fromisoformat(point["start"]): point for point in response.json()["points"]}


def test_15_minute_buckets_have_the_mean_and_peak(api, camera, series):
    got = buckets(get_counts(api, camera, bucket="15m", **{"from": iso(T0), "to": iso(at(120))}))

    assert list(got) == [at(0), at(15), at(60)]
    first, second, third = got.values()
    assert (first["frames"], first["mean"], first["peak"]) == (3, pytest.approx(14.0), 20.0)  # 10, 20, 12
    assert (second["frames"], second["mean"], second["peak"]) == (2, pytest.approx(35.0), 40.0)  # 40, 30
    assert (third["frames"], third["mean"], third["peak"]) == (1, 7.0, 7.0)
    assert first["zones"] == {
        "east": {"mean": pytest.approx(17 / 3), "peak": 8.0},
        "west": {"mean": pytest.approx(25 / 3), "peak": 12.0},
    }
    assert second["zones"] == {"east": {"mean": 20.0, "peak": 30.0}, "west": {"mean": 15.0, "peak": 20.0}}


def test_hour_buckets_have_the_mean_and_peak(api, camera, series):
    got = buckets(get_counts(api, camera, bucket="1h", **{"from": iso(T0), "to": iso(at(2 * 24 * 60))}))

    assert list(got) == [at(0), at(60), at(24 * 60)]
    assert [(point["frames"], point["mean"], point["peak"]) for point in got.values()] == [
        (5, pytest.approx(22.4), 40.0),  # 10, 20, 12, 40, 30
        (1, 7.0, 7.0),
        (1, 100.0, 100.0),
    ]


def test_day_buckets_have_the_mean_and_peak(api, camera, series):
    got = buckets(get_counts(api, camera, bucket="1d", **{"from": iso(T0), "to": iso(at(2 * 24 * 60))}))

    midnight = datetime(2025, 3, 10, tzinfo=UTC)
    assert list(got) == [midnight, midnight + timedelta(days=1)]
    assert [(point["frames"], point["mean"], point["peak"]) for point in got.values()] == [
        (6, pytest.approx(119 / 6), 40.0),
        (1, 100.0, 100.0),
    ]


def test_day_buckets_start_at_midnight_on_the_sites_clock(api, camera):
    """A day is the site's day, and every time is on its clock: 20:00 UTC is already the next day in Kolkata."""
    camera.site.time_zone = "Asia/Kolkata"
    camera.site.save()
    frame_with_result(camera, datetime(2025, 3, 10, 17, 0, tzinfo=UTC), 10.0)  # 22:30 on the 10th in Kolkata
    frame_with_result(camera, datetime(2025, 3, 10, 20, 0, tzinfo=UTC), 30.0)  # 01:30 on the 11th

    got = buckets(get_counts(api, camera, bucket="1d", **{"from": iso(T0), "to": iso(at(24 * 60))}))

    assert [start.isoformat() for start in got] == ["2025-03-10T00:00:00+05:30", "2025-03-11T00:00:00+05:30"]
    assert [point["mean"] for point in got.values()] == [10.0, 30.0]
    hours = buckets(get_counts(api, camera, bucket="1h", **{"from": iso(T0), "to": iso(at(24 * 60))}))
    assert [start.isoformat() for start in hours] == ["2025-03-10T22:00:00+05:30", "2025-03-11T01:00:00+05:30"]
    answer = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(24 * 60))}).json()
    assert answer["time_zone"] == "Asia/Kolkata" and answer["from"].endswith("+05:30")
    assert [point["time"] for point in answer["points"]] == ["2025-03-10T22:30:00+05:30", "2025-03-11T01:30:00+05:30"]
    csv_rows = get_counts(api, camera, format="csv", **{"from": iso(T0), "to": iso(at(24 * 60))}).content.decode()
    assert csv_rows.splitlines()[1].startswith("2025-03-10T22:30:00+05:30,")


def test_a_site_refuses_a_time_zone_that_is_not_iana(camera):
    camera.site.time_zone = "Central European Time"
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        camera.site.full_clean()


def test_an_unknown_bucket_is_refused(api, camera):
    response = get_counts(api, camera, bucket="5m")
    assert response.status_code == 400
    assert "bucket" in response.json()


@pytest.mark.parametrize("to_minutes", [0, -1])
def test_from_must_come_before_to(api, camera, to_minutes):
    response = get_counts(api, camera, **{"from": iso(T0), "to": iso(at(to_minutes))})
    assert response.status_code == 400
    assert "from" in response.json()


def test_a_malformed_time_is_refused(api, camera):
    response = get_counts(api, camera, **{"from": "yesterday"})
    assert response.status_code == 400
    assert "from" in response.json()


def test_another_gateways_camera_is_not_found(camera, series, other_gateway):
    response = get_counts(token_client(other_gateway.token), camera, **{"from": iso(T0), "to": iso(at(60))})
    assert response.status_code == 404


def test_a_signed_in_viewer_reads_any_camera(client, camera, series):
    client.force_login(user_with_role("viewer", Role.VIEWER))
    response = client.get(f"/api/v1/cameras/{camera.pk}/counts/", {"from": iso(T0), "to": iso(at(60))})
    assert response.status_code == 200
    assert len(response.json()["points"]) == 5
