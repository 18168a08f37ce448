"""The site page's figures: usual levels by local weekday and hour, the seasonal forecast and its error on held-out
days, the busiest hours, hourly means from kept frames and folded quarter hours alike, and the page itself."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.webapp.conftest import counted_frames
from webapp.cameras.models import Camera
from webapp.dashboard import analytics
from webapp.ingest.models import QuarterHourCount, Result
from webapp.ingest.usual import hourly_means

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 12, 20, tzinfo=SHANGHAI)  # a Thursday


def weekly(hour: datetime) -> float:
    """A crowd that repeats every week: busy on weekday evenings, quiet at night."""
    return 10.0 + 5 * hour.weekday() + (40.0 if 17 <= hour.hour < 19 else 0.0)


@pytest.fixture
def site_camera(site) -> Camera:
    site.time_zone = "Asia/Shanghai"
    site.save()
    camera = Camera.objects.create(site=site, name="Concourse")
    start = (NOW - timedelta(days=35)).replace(minute=0)
    hours = [
        start + timedelta(hours=step)
        for step in range(35 * 24)
        if start + timedelta(hours=step) < NOW - timedelta(hours=1)
    ]
    counted_frames(camera, [hour + timedelta(minutes=10) for hour in hours], lambda moment: weekly(moment) - 2)
    counted_frames(camera, [hour + timedelta(minutes=40) for hour in hours], lambda moment: weekly(moment) + 2)
    return camera


def test_a_weekly_crowd_is_its_own_usual_level_and_forecast_exactly(site_camera):
    figures = analytics.site_analytics([site_camera], SHANGHAI, NOW, compare_days=7)
    [camera] = figures["cameras"]
    assert camera["usual"][0][18] == weekly(datetime(2026, 11, 30, 18, tzinfo=SHANGHAI)) == 50.0  # Monday 18:00
    assert camera["usual"][6][3] == 40.0  # Sunday 03:00, on the site's clock (19:00 UTC on Saturday)
    # A week's mean level: 10 + 5 x 3 + 40 x 2/24 = 28.3 (one hour short of the week: the one under way).
    assert camera["error"] == {"mae": 0.0, "hours": 7 * 24 - 1, "mean_level": pytest.approx(28.3, abs=0.15)}
    assert camera["forecast"]["x"][0] == "2026-12-03 12:00" and len(camera["forecast"]["x"]) == 6
    assert camera["forecast"]["y"] == [weekly(NOW.replace(hour=12 + step)) for step in range(6)]
    assert len(camera["compare"]["x"]) == 7 * 24 - 1 and camera["compare"]["x"][-1] == "2026-12-03 11:00"
    assert [(row["weekday"], row["hour"], row["people"]) for row in figures["busiest"][:3]] == [
        ("Sunday", "17:00-18:00", 80.0),
        ("Sunday", "18:00-19:00", 80.0),
        ("Saturday", "17:00-18:00", 75.0),
    ]


def test_an_unusual_held_out_hour_is_the_forecasts_error(site_camera):
    spike = datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI)  # a Tuesday morning, two days ago
    Result.objects.filter(
        frame__camera=site_camera, frame__captured_at__gte=spike, frame__captured_at__lt=spike + timedelta(hours=1)
    ).update(count=300.0)
    error = analytics.site_analytics([site_camera], SHANGHAI, NOW, 7)["cameras"][0]["error"]
    assert error["mae"] == pytest.approx((300.0 - weekly(spike)) / (7 * 24 - 1), abs=0.01)


def test_folded_quarter_hours_count_like_the_frames_they_replaced(site):
    camera = Camera.objects.create(site=site, name="Old")
    hour = datetime(2026, 11, 2, 8, tzinfo=ZoneInfo("UTC"))
    QuarterHourCount.objects.create(camera=camera, start=hour, frames=3, total=30.0, peak=12.0)
    counted_frames(camera, [hour + timedelta(minutes=50)], lambda moment: 50.0)
    means = hourly_means([camera], hour - timedelta(hours=1), hour + timedelta(hours=2), ZoneInfo("UTC"))
    assert means == {camera.pk: {hour: 20.0}}  # (30 + 50) / 4 frames


def test_the_site_page_draws_its_figures_on_the_sites_clock(viewer, site_camera):
    client = viewer
    page = client.get(f"/sites/{site_camera.site_id}/?days=28")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Times in Asia/Shanghai" in text and 'id="site-figures"' in text and "Busiest hours" in text
    assert page.context["days"] == "28"
    assert client.get("/sites/999999/").status_code == 404
