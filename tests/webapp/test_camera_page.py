"""A camera's page: the latest frame with its heatmap, zones, open alerts, the series controls; and the recent frames
its scrubber walks through."""

from datetime import UTC, datetime

import pytest

from tests.factories import ago, frame_with_result
from tests.webapp.test_api_edge_results import fields as edge_fields
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Frame

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def test_the_page_shows_the_latest_frame_zones_and_the_series(viewer, camera):
    zone = Zone.objects.create(camera=camera, name="ticket hall", polygon=[[0, 0], [512, 0], [512, 768], [0, 768]])
    frame = frame_with_result(camera, datetime(2025, 3, 10, 9, 0, tzinfo=UTC), 37.4, {zone: 20.4})
    Frame.objects.create(camera=camera, captured_at=frame.captured_at, content_hash="1" * 64, width=8, height=8)

    response = viewer.get(f"/cameras/{camera.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<span class="count" id="frame-count">37.4</span>' in page
    assert "<td>ticket hall</td><td>20.4</td>" in page
    assert "1 frame waiting to be counted" in page
    assert f'data-density-url="/api/v1/frames/{frame.pk}/density.json"' in page
    assert f'data-frames-url="/cameras/{camera.pk}/frames.json"' in page
    assert f'data-counts-url="/api/v1/cameras/{camera.pk}/counts/"' in page
    assert f'href="/api/v1/cameras/{camera.pk}/counts/?format=csv"' in page
    assert 'src="/static/plotly/plotly.min.js"' in page


def test_a_camera_without_results_says_so(viewer, camera):
    page = viewer.get(f"/cameras/{camera.pk}/").content.decode()
    assert "No counted frame yet." in page


def test_an_unknown_camera_is_not_found(viewer):
    assert viewer.get(f"/cameras/{Camera.objects.count() + 1000}/").status_code == 404


def test_the_scrubber_gets_recent_frames_oldest_first(viewer, camera):
    zone = Zone.objects.create(camera=camera, name="left", polygon=[[0, 0], [10, 0], [10, 10]])
    made = [frame_with_result(camera, ago(minutes=minutes), float(minutes), {zone: 1.0}) for minutes in (30, 5, 20)]

    data = viewer.get(f"/cameras/{camera.pk}/frames.json").json()

    assert [frame["id"] for frame in data["frames"]] == [made[0].pk, made[2].pk, made[1].pk]
    assert [frame["count"] for frame in data["frames"]] == [30.0, 20.0, 5.0]
    first = data["frames"][0]
    assert first["density"] == f"/api/v1/frames/{made[0].pk}/density.json"
    assert first["zones"] == {"left": 1.0} and (first["width"], first["height"]) == (1024, 768)
    assert data["state"] == "live" and data["open_alerts"] == 0
    assert first["origin"] == "counted by csrnet-lite"


def test_a_frame_counted_on_the_gateway_says_so_and_shows_its_heatmap_without_the_frame(viewer, api, camera):
    sent = api.post("/api/v1/edge-results/", edge_fields(camera, captured_at=ago(minutes=1).isoformat()))
    assert sent.status_code == 201, sent.content
    frame = Frame.objects.get(pk=sent.json()["id"])

    page = viewer.get(f"/cameras/{camera.pk}/").content.decode()
    overview = viewer.get("/").content.decode()
    data = viewer.get(f"/cameras/{camera.pk}/frames.json").json()

    assert "counted on the gateway by skynet-count; the frame stays on site" in page
    assert 'data-image-url=""' in page and f'data-density-url="/api/v1/frames/{frame.pk}/density.json"' in page
    assert "counted on the gateway" in overview and f"/api/v1/frames/{frame.pk}/heatmap.png" in overview
    assert f"/api/v1/frames/{frame.pk}/image" not in overview
    assert data["frames"][0]["image"] is None
    assert data["frames"][0]["origin"] == "counted on the gateway by skynet-count; the frame stays on site"


def open_alert(camera: Camera) -> Alert:
    frame = frame_with_result(camera, ago(minutes=1), 80.0)
    return Alert.objects.create(
        camera=camera, threshold=50, value=80, peak=80, frame=frame, raised_at=frame.captured_at
    )


def test_open_alerts_show_with_an_acknowledge_button_for_operators(operator, camera):
    alert = open_alert(camera)
    page = operator.get(f"/cameras/{camera.pk}/").content.decode()
    assert f'data-alert="{alert.pk}"' in page
    assert f'action="/alerts/{alert.pk}/acknowledge/"' in page


def test_viewers_see_open_alerts_without_the_button(viewer, camera):
    alert = open_alert(camera)
    page = viewer.get(f"/cameras/{camera.pk}/").content.decode()
    assert f'data-alert="{alert.pk}"' in page
    assert "/acknowledge/" not in page
