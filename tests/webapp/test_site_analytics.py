"""The site page's figures: usual levels by local weekday and hour, the seasonal forecast and its error on held-out
days, the busiest hours, hourly means from kept frames and folded quarter hours alike, the figures kept once a site and
hour in the cache and warmed by the beat, and the page itself."""

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import count_history
from webapp import queues
from webapp.cameras.models import Camera, Site
from webapp.celery_app import app
from webapp.dashboard import analytics
from webapp.dashboard.site_figures import WARM_WITHIN, figures_key, site_figures, warm_site_figures
from webapp.ingest.models import QuarterHourCount, Result
from webapp.ingest.rollups import recount_quarter_hour
from webapp.ingest.usual import hourly_means
from workers import tasks  # noqa: F401  (registers the tasks on the app)

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 12, 20, tzinfo=SHANGHAI)  # a Thursday


@pytest.fixture(autouse=True)
def nothing_kept() -> None:
    """Each test starts with no figures in the cache: those it reads are the ones it computed."""
    cache.clear()


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
    count_history(camera, [hour + timedelta(minutes=10) for hour in hours], lambda moment: weekly(moment) - 2)
    count_history(camera, [hour + timedelta(minutes=40) for hour in hours], lambda moment: weekly(moment) + 2)
    return camera


def test_a_weekly_crowd_is_its_own_usual_level_and_forecast_exactly(site_camera):
    figures = analytics.site_analytics([site_camera], SHANGHAI, NOW, compare_days=7)
    [camera] = figures["cameras"]
    assert camera["usual"][0][18] == weekly(datetime(2026, 11, 30, 18, tzinfo=SHANGHAI)) == 50.0  # Monday 18:00
    assert camera["usual"][6][3] == 40.0  # Sunday 03:00, on the site's clock (19:00 UTC on Saturday)
    # A week's mean level: 10 + 5 x 3 + 40 x 2/24 = 28.3, over the week of whole hours before 12:00.
    assert camera["error"] == {"mae": 0.0, "hours": 7 * 24, "mean_level": 28.3}
    assert camera["forecast"]["x"][0] == "2026-12-03 12:00" and len(camera["forecast"]["x"]) == 6
    assert camera["forecast"]["y"] == [weekly(NOW.replace(hour=12 + step)) for step in range(6)]
    assert len(camera["compare"]["x"]) == 7 * 24 and camera["compare"]["x"][0] == "2026-11-26 12:00"
    assert camera["compare"]["x"][-1] == "2026-12-03 11:00"
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
    for quarter in range(4):  # as a recount rebuilds the quarter hours it changed
        recount_quarter_hour(site_camera.pk, spike + timedelta(minutes=15 * quarter))
    error = analytics.site_analytics([site_camera], SHANGHAI, NOW, 7)["cameras"][0]["error"]
    assert error["mae"] == pytest.approx((300.0 - weekly(spike)) / (7 * 24), abs=0.01)


def test_folded_quarter_hours_count_like_the_frames_they_replaced(site):
    camera = Camera.objects.create(site=site, name="Old")
    hour = datetime(2026, 11, 2, 8, tzinfo=ZoneInfo("UTC"))
    QuarterHourCount.objects.create(camera=camera, start=hour, frames=3, total=30.0, peak=12.0)
    count_history(camera, [hour + timedelta(minutes=50)], lambda moment: 50.0)
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


def test_kept_figures_are_the_fresh_ones_all_the_hour(site_camera):
    site, cameras = site_camera.site, [site_camera]
    kept = {days: site_figures(site, cameras, NOW, days) for days in analytics.COMPARE_DAYS}
    # A frame of the hour under way changes nothing until the hour completes; later in the hour, the cache alone.
    count_history(site_camera, [NOW + timedelta(minutes=5)], lambda moment: 500.0)
    later = NOW + timedelta(minutes=35)
    with CaptureQueriesContext(connection) as queries:
        again = {days: site_figures(site, cameras, later, days) for days in analytics.COMPARE_DAYS}
    assert again == kept and len(queries) == 0
    for days, entry in kept.items():
        assert entry.figures == analytics.site_analytics(cameras, SHANGHAI, later, days)
        assert (entry.as_of, entry.computed_at) == (datetime(2026, 12, 3, 12, tzinfo=SHANGHAI), NOW)
        assert len(entry.figures["cameras"][0]["compare"]["x"]) == days * 24


def test_a_new_hour_recomputes_with_the_hour_just_completed(site_camera):
    site, cameras = site_camera.site, [site_camera]
    site_figures(site, cameras, NOW, 7)
    count_history(site_camera, [NOW + timedelta(minutes=5)], lambda moment: 500.0)  # 12:25, the only one of 12:00
    next_hour = NOW + timedelta(minutes=45)
    fresh = site_figures(site, cameras, next_hour, 7)
    compare = fresh.figures["cameras"][0]["compare"]
    assert (compare["x"][-1], compare["y"][-1]) == ("2026-12-03 12:00", 500.0)
    assert (fresh.as_of, fresh.computed_at) == (datetime(2026, 12, 3, 13, tzinfo=SHANGHAI), next_hour)
    assert "2026-12-03 12:00" not in site_figures(site, cameras, NOW, 7).figures["cameras"][0]["compare"]["x"]


def test_a_camera_renamed_or_added_shows_within_the_hour(site_camera):
    site = site_camera.site
    site_figures(site, [site_camera], NOW, 7)
    site_camera.name = "Main concourse"
    site_camera.save()
    Camera.objects.create(site=site, name="Platform")
    kept = site_figures(site, list(site.cameras.all()), NOW, 7)
    assert [camera["name"] for camera in kept.figures["cameras"]] == ["Main concourse", "Platform"]


def test_the_warm_command_fills_the_cache_for_every_site(site_camera):
    Camera.objects.create(site=Site.objects.create(name="Howrah", time_zone="Asia/Kolkata"), name="Gate")
    Site.objects.create(name="No cameras yet")
    out = io.StringIO()
    before = timezone.now()
    call_command("warm_site_analytics", stdout=out)
    after = timezone.now()
    assert out.getvalue().count("warmed: ") == Site.objects.count() == 3
    for site in Site.objects.all():
        cameras = list(site.cameras.all())
        # The hour the command read `now` in: the one before or after, should an hour have begun meanwhile.
        hours = {analytics.local_hour_start(moment, site.zone) for moment in (before, after)}
        for days in analytics.COMPARE_DAYS:
            assert any(cache.get(figures_key(site, cameras, days, hour)) for hour in hours), (site.name, days)


def test_the_beat_warms_each_quarter_hour_the_sites_whose_hour_just_began(site, settings):
    site.time_zone = "Asia/Shanghai"  # hours begin at :00 UTC
    site.save()
    kolkata = Site.objects.create(name="Howrah", time_zone="Asia/Kolkata")  # +05:30: hours begin at :30 UTC
    six_past = datetime(2026, 12, 3, 4, 6, tzinfo=UTC)
    assert warm_site_figures(six_past, WARM_WITHIN) == [site]
    assert warm_site_figures(six_past + timedelta(minutes=15), WARM_WITHIN) == []
    assert warm_site_figures(six_past + timedelta(minutes=30), WARM_WITHIN) == [kolkata]
    beat = settings.CELERY_BEAT_SCHEDULE["warm-site-analytics"]
    assert beat["task"] == queues.WARM_SITE_ANALYTICS and queues.WARM_SITE_ANALYTICS in app.tasks
    assert sorted(beat["schedule"].minute) == [6, 21, 36, 51]


def test_the_page_computes_its_figures_with_an_empty_cache_then_reads_them(viewer, site_camera):
    def reads_quarter_hours(queries: CaptureQueriesContext) -> bool:
        return any("ingest_quarterhourcount" in query["sql"] for query in queries.captured_queries)

    url = f"/sites/{site_camera.site_id}/"
    with CaptureQueriesContext(connection) as cold:
        page = viewer.get(url)
    assert page.status_code == 200 and reads_quarter_hours(cold)
    assert f"computed at {page.context['computed_at']}" in page.content.decode()
    with CaptureQueriesContext(connection) as kept:
        other_range = viewer.get(f"{url}?days=28")
    assert other_range.status_code == 200 and other_range.context["days"] == "28"
    assert not reads_quarter_hours(kept) and other_range.context["computed_at"] == page.context["computed_at"]
