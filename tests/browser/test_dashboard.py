"""The dashboard in a real browser: sign in, the overview's heatmaps and live updates, a camera's plotly heatmap and
series, the map, drawing a zone by clicking, acknowledging an alert, downloading a CSV, and a viewer refused an
operator's action. Each main page is photographed (docs/ with CROWDSCOPE_SCREENSHOTS=docs)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tests.browser.pages import signed_in_page
from tests.factories import count_history, frame_counted_by_model
from webapp.accounts.roles import Role
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Result

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_in_then_the_overview_shows_heatmaps_counts_and_sparklines(operator_page, station, screenshots):
    page = operator_page
    page.reload()
    cards = page.locator(".card")
    assert cards.count() == 2
    concourse = page.locator(f'.card[data-camera="{station["concourse"].pk}"]')
    latest = station["frames"][-1].result
    assert concourse.locator(".count").inner_text() == f"{latest.count:.0f}"
    heat = concourse.locator("img.heat")
    heat.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heat.element_handle())
    assert concourse.locator(".state").inner_text() == "live"
    points = concourse.locator(".sparkline polyline").get_attribute("points").split()
    assert len(points) == 3  # one a frame: they are 20 minutes apart
    page.screenshot(path=screenshots / "overview.png", full_page=True)


def test_the_overview_updates_without_a_reload(operator_page, station):
    page = operator_page
    page.evaluate("window.notReloaded = true")
    card = page.locator(f'.card[data-camera="{station["platform"].pk}"] .count')
    before = card.inner_text()
    frame = frame_counted_by_model(station["platform"], station["images"][0].read_bytes(), captured_at=timezone.now())
    expected = f"{frame.result.count:.0f}"
    assert expected != before
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent === text",
        arg=[f'.card[data-camera="{station["platform"].pk}"] .count', expected],
        timeout=15_000,
    )
    assert page.evaluate("window.notReloaded") is True


def test_a_live_update_keeps_keyboard_focus_and_announces_the_change_politely(operator_page, station):
    page = operator_page
    concourse = station["concourse"]
    card = page.locator(f'#cards a.card[data-camera="{concourse.pk}"]')
    card.focus()
    assert page.get_attribute("#live-status", "aria-live") == "polite"
    Alert.objects.create(
        camera=concourse, threshold=1, value=2, peak=2, frame=station["frames"][-1], raised_at=timezone.now()
    )
    page.wait_for_function(
        "document.getElementById('live-status').textContent.startsWith('1 open alert;')", timeout=15_000
    )
    # The redraw replaced every card; focus is on the new one for the same camera, not lost to the page.
    focused = page.evaluate(
        "() => ({ camera: document.activeElement.dataset.camera, attached: document.activeElement.isConnected })"
    )
    assert focused == {"camera": str(concourse.pk), "attached": True}


def test_the_camera_page_draws_the_heatmap_the_series_and_walks_through_frames(
    operator_page, live_server, station, screenshots
):
    page = operator_page
    page.goto(f"{live_server.url}/cameras/{station['concourse'].pk}/")
    # plotly draws a heatmap as an image inside its SVG: it must be there and carry pixels.
    heatmap_image = page.locator("#heatmap .hm image")
    heatmap_image.wait_for(state="attached")
    assert len(heatmap_image.get_attribute("href")) > 1000
    page.locator("#series .scatterlayer .trace").first.wait_for(state="attached")
    legend = page.locator("#series .legendtext").all_text_contents()
    assert {"camera (mean)", "zone Left", "zone Right"} <= set(legend)

    frames = station["frames"]
    assert page.locator("#frame-count").inner_text() == f"{frames[-1].result.count:.1f}"
    page.wait_for_function("document.getElementById('scrubber').max === '2'")
    page.locator("#scrubber").fill("0")
    page.wait_for_function(
        "text => document.getElementById('frame-count').textContent === text", arg=f"{frames[0].result.count:.1f}"
    )
    assert not page.locator("#follow").is_checked()
    page.screenshot(path=screenshots / "camera.png", full_page=True)


def test_the_camera_page_leads_with_the_frame_and_folds_its_open_alerts_under_their_number(
    operator_page, live_server, station
):
    """The frame, its count and the series come first; the open alerts below them, folded under "3 open alerts", a
    number that follows a new alert without a reload."""
    camera, frame = station["concourse"], station["frames"][-1]

    def raise_alert(value: float) -> Alert:
        return Alert.objects.create(
            camera=camera, threshold=100, value=value, peak=value, frame=frame, raised_at=frame.captured_at
        )

    alerts = [raise_alert(value) for value in (120, 130, 140)]
    page = operator_page
    page.goto(f"{live_server.url}/cameras/{camera.pk}/")
    page.locator("#heatmap .hm image").wait_for(state="attached")
    tops = {name: page.locator(name).bounding_box()["y"] for name in ("#frame-count", "#heatmap", "#series")}
    fold = page.locator("details#camera-alerts")
    assert tops["#frame-count"] < tops["#heatmap"] < tops["#series"] < fold.bounding_box()["y"]
    assert fold.locator("summary").inner_text() == "3 open alerts"
    assert not fold.evaluate("details => details.open")
    assert not page.locator(f'tr[data-alert="{alerts[0].pk}"]').is_visible()

    fold.locator("summary").click()
    for alert in alerts:
        assert page.locator(f'tr[data-alert="{alert.pk}"] button.ack').is_visible()
    raise_alert(150)
    page.wait_for_function("document.querySelector('#camera-alerts summary').textContent === '4 open alerts'")
    assert fold.evaluate("details => details.open")  # the poll left the operator's fold as it was


def test_the_series_sits_on_the_sites_clock_in_a_browser_in_shanghai(browser, live_server, station):
    """Plotly once drew the points in UTC wall time against an axis in local time: 8 hours early in Shanghai. Now
    every time is the site's wall clock (here New York's), whatever the browser's zone."""
    station["site"].time_zone = "America/New_York"
    station["site"].save()
    page = signed_in_page(browser, live_server, "shen", Role.VIEWER, timezone_id="Asia/Shanghai")
    page.goto(f"{live_server.url}/cameras/{station['concourse'].pk}/")
    page.select_option("#bucket", "raw")
    page.wait_for_function("document.getElementById('series').data?.[0]?.name === 'camera'")  # every frame
    figure = page.evaluate(
        "() => { const plot = document.getElementById('series');"
        " return { x: plot.data[0].x, range: plot.layout.xaxis.range, title: plot.layout.xaxis.title?.text }; }"
    )
    assert len(figure["x"]) == 3
    new_york = ZoneInfo("America/New_York")
    last = station["frames"][-1].captured_at.astimezone(new_york)
    assert figure["x"][-1] == f"{last:%Y-%m-%d %H:%M:%S}.{last.microsecond // 1000:03d}"
    axis_end = datetime.fromisoformat(figure["range"][1]).replace(tzinfo=new_york)
    assert timedelta(0) < axis_end - last < timedelta(minutes=5)  # the newest point at the right end, not 13 h off
    assert figure["title"] == "time (America/New_York)"
    assert f"{last:%Y-%m-%d %H:%M:%S}" in page.locator("#frame-time").inner_text()  # the frame's, in New York
    assert "Times in America/New_York" in page.content()
    page.close()


def test_an_empty_series_still_draws_a_time_axis_and_says_why(operator_page, live_server, station):
    quiet = Camera.objects.create(site=station["site"], name="Quiet")
    page = operator_page
    page.goto(f"{live_server.url}/cameras/{quiet.pk}/")
    page.wait_for_function("document.getElementById('series-note').textContent !== ''")
    assert page.locator("#series-note").inner_text() == "No counted frames in this range."
    assert page.evaluate("document.getElementById('series').layout.xaxis.type") == "date"
    ticks = page.locator("#series .xtick text").all_text_contents()
    assert ticks and all(":" in tick or any(c.isalpha() for c in tick) for tick in ticks), ticks  # times, not -1..6


def test_the_map_places_the_cameras(operator_page, live_server, station, screenshots):
    page = operator_page
    page.goto(f"{live_server.url}/map/")
    page.locator("#map .scatterlayer .point").first.wait_for(state="attached")
    assert page.locator("#map .scatterlayer .point").count() == 2
    assert set(page.locator("#map .scatterlayer .textpoint").all_text_contents()) == {"Concourse", "Platform 4"}
    page.screenshot(path=screenshots / "map.png", full_page=True)


def test_an_operator_draws_a_zone_by_clicking(operator_page, live_server, station, screenshots):
    page = operator_page
    camera = station["concourse"]
    page.goto(f"{live_server.url}/cameras/{camera.pk}/zones/new/")
    canvas = page.locator("#zone-canvas")
    box = canvas.bounding_box()
    corners = [(0.1, 0.5), (0.6, 0.5), (0.6, 0.95), (0.1, 0.95)]  # shares of the frame's width and height
    for share_x, share_y in corners:
        page.mouse.click(box["x"] + share_x * box["width"], box["y"] + share_y * box["height"])
    assert page.locator("#corners circle").count() == 4
    page.fill("#zone-name", "Queue")
    page.fill("input[name=alert_threshold]", "30")
    page.screenshot(path=screenshots / "zones.png", full_page=True)
    page.click("#save-zone")
    page.wait_for_url(f"{live_server.url}/cameras/{camera.pk}/zones/")

    zone = Zone.objects.get(camera=camera, name="Queue")
    assert zone.alert_threshold == 30
    expected = [(share_x * 1024, share_y * 768) for share_x, share_y in corners]
    assert len(zone.polygon) == 4
    for (x, y), (want_x, want_y) in zip(zone.polygon, expected, strict=True):
        assert abs(x - want_x) <= 3 and abs(y - want_y) <= 3
    assert page.locator("td", has_text="Queue").count() == 1


def test_an_operator_draws_a_zone_from_the_keyboard(operator_page, live_server, station):
    page = operator_page
    camera = station["concourse"]
    page.goto(f"{live_server.url}/cameras/{camera.pk}/zones/new/")
    page.focus("#zone-canvas")  # as Tab reaches it
    assert page.evaluate("document.activeElement.id") == "zone-canvas"
    # The cross starts at the centre (512, 384); a step is 1% of the longer side (10 px), Shift a tenth (102 px).
    corners = [
        ["Shift+ArrowLeft", "Shift+ArrowUp"],
        ["Shift+ArrowRight"] * 2,
        ["Shift+ArrowDown"] * 2,
        ["Shift+ArrowLeft"] * 2 + ["ArrowUp"],
    ]
    for keys in corners:
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
    page.keyboard.press(" ")  # a corner too many (Space places one too)...
    assert page.locator("#corner-count").inner_text() == "5 corners"
    page.keyboard.press("Backspace")  # ...taken back
    assert page.locator("#corner-count").inner_text() == "4 corners"
    page.focus("#zone-name")
    page.keyboard.type("Kiosk")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/cameras/{camera.pk}/zones/")

    zone = Zone.objects.get(camera=camera, name="Kiosk")
    assert zone.polygon == [[410, 282], [614, 282], [614, 486], [410, 476]]


@pytest.fixture
def alert(station) -> Alert:
    camera = station["concourse"]
    camera.alert_threshold = 1
    camera.save()
    frame_counted_by_model(camera, station["images"][1].read_bytes(), captured_at=timezone.now())
    return Alert.objects.get(camera=camera, state=Alert.State.OPEN)


def test_an_operator_acknowledges_an_alert(operator_page, live_server, alert, screenshots):
    page = operator_page
    page.goto(f"{live_server.url}/alerts/")
    row = page.locator(f'tr[data-alert="{alert.pk}"]')
    assert "open" in row.inner_text()
    page.screenshot(path=screenshots / "alerts.png", full_page=True)
    row.locator("button.ack").click()
    page.wait_for_load_state()
    assert page.locator(f'tr[data-alert="{alert.pk}"]').count() == 0
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_by.username == "olivia"


def test_the_csv_download_holds_the_series(operator_page, live_server, station):
    page = operator_page
    page.goto(f"{live_server.url}/cameras/{station['concourse'].pk}/")
    page.select_option("#bucket", "raw")
    page.wait_for_function("document.getElementById('csv').href.includes('bucket=raw')")
    with page.expect_download() as download_info:
        page.click("#csv")
    download = download_info.value
    assert download.suggested_filename.startswith(f"camera-{station['concourse'].pk}-counts-raw-")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    results = Result.objects.filter(frame__camera=station["concourse"]).order_by("frame__captured_at")
    assert [int(row["frame"]) for row in rows] == [result.frame_id for result in results]
    assert [float(row["count"]) for row in rows] == pytest.approx([result.count for result in results], abs=1e-3)
    for row, result in zip(rows, results, strict=True):
        zones = {zone.zone_name: zone.count for zone in result.zone_counts.all()}
        assert float(row["zone Left"]) == pytest.approx(zones["Left"], abs=1e-3)


def test_a_viewer_is_refused_an_operators_actions(viewer_page, live_server, alert, station):
    page = viewer_page
    page.goto(f"{live_server.url}/alerts/")
    assert page.locator(f'tr[data-alert="{alert.pk}"]').count() == 1
    assert page.locator("button.ack").count() == 0
    # By URL, with a valid CSRF token, so that only the role can refuse it.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/alerts/{alert.pk}/acknowledge/",
        headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/alerts/"},
    )
    assert response.status == 403 and "needs the operator role" in response.text()
    page.goto(f"{live_server.url}/cameras/{station['concourse'].pk}/zones/new/")
    assert "needs the operator role" in page.content()
    alert.refresh_from_db()
    assert alert.state == Alert.State.OPEN


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 768, "height": 1024}])
def test_the_pages_fit_a_desktop_and_a_tablet_without_sideways_scrolling(operator_page, live_server, station, viewport):
    page = operator_page
    page.set_viewport_size(viewport)
    for path in [
        "/",
        f"/cameras/{station['concourse'].pk}/",
        "/map/",
        "/alerts/",
        f"/cameras/{station['concourse'].pk}/zones/new/",
    ]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, viewport, overflow)


def test_the_site_page_shows_usual_levels_a_forecast_and_busiest_hours(browser, live_server, station, screenshots):
    """Five weeks of a weekly crowd on both cameras, read in a browser in Shanghai while the site runs on Paris time."""
    station["site"].time_zone = "Europe/Paris"
    station["site"].save()
    paris = ZoneInfo("Europe/Paris")
    now = timezone.now().astimezone(paris)
    start = (now - timedelta(days=35)).replace(minute=0, second=0, microsecond=0)
    hours = [start + timedelta(hours=step) for step in range(35 * 24)]
    hours = [hour for hour in hours if hour < now - timedelta(hours=2)]

    def rush(scale: float):
        return lambda moment: scale * (8 + (60 if moment.astimezone(paris).hour in (8, 17) else 0) + moment.weekday())

    count_history(station["concourse"], [hour + timedelta(minutes=7) for hour in hours], rush(1.0))
    count_history(station["platform"], [hour + timedelta(minutes=37) for hour in hours], rush(0.5))

    page = signed_in_page(browser, live_server, "sita", Role.VIEWER, timezone_id="Asia/Shanghai")
    page.goto(f"{live_server.url}/sites/{station['site'].pk}/")
    page.wait_for_function("document.querySelectorAll('#usual .js-plotly-plot').length === 2")
    assert page.locator("#busiest tbody tr").count() == 5
    assert page.locator("#busiest tbody tr").first.inner_text().split("\t")[1].startswith(("08:00", "17:00"))
    assert "Times in Europe/Paris" in page.content()
    forecast = page.evaluate("() => document.getElementById('forecast').data.map((trace) => trace.x[0])")
    assert forecast == [f"{now:%Y-%m-%d %H}:00"] * 2  # the hour under way, on Paris's clock, not Shanghai's
    assert page.locator("#forecast-errors tbody tr").first.inner_text().count("±") == 1
    page.screenshot(path=screenshots / "site.png", full_page=True)
    page.close()
