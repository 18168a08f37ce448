"""The map: cameras by latitude and longitude, or on an uploaded site plan, with their current count and state."""

import io

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from tests.factories import ago, frame_with_result
from webapp.cameras.models import Camera, Site

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def plan_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_cameras_are_placed_by_latitude_and_longitude(viewer, site):
    placed = Camera.objects.create(site=site, name="placed", latitude=31.23, longitude=121.47, alert_threshold=50)
    frame_with_result(placed, ago(minutes=1), 30.0)
    Camera.objects.create(site=site, name="nowhere")  # no position: not on the map

    data = viewer.get("/map/data.json").json()

    assert data["plan"] is None
    assert data["cameras"] == [
        {
            "id": placed.pk,
            "name": "placed",
            "site": site.name,
            "x": 121.47,
            "y": 31.23,
            "count": 30.0,
            "threshold": 50.0,
            "state": "live",
            "crowding": "normal",
            "open_alerts": 0,
            "url": f"/cameras/{placed.pk}/",
        }
    ]


def test_a_site_with_a_plan_places_its_cameras_on_it(viewer, site):
    site.plan.save("station.png", ContentFile(plan_png(800, 600)))
    Camera.objects.create(site=site, name="hall", plan_x=120, plan_y=340, latitude=1, longitude=2)

    data = viewer.get("/map/data.json", {"site": site.pk}).json()

    assert data["plan"] == {"url": f"/sites/{site.pk}/plan", "width": 800, "height": 600}
    assert [(camera["name"], camera["x"], camera["y"]) for camera in data["cameras"]] == [("hall", 120, 340)]
    response = viewer.get(data["plan"]["url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_the_plan_is_only_for_signed_in_viewers(client, sign_in, site):
    site.plan.save("station.png", ContentFile(plan_png(10, 10)))
    assert client.get(f"/sites/{site.pk}/plan").status_code == 302
    assert sign_in(None).get(f"/sites/{site.pk}/plan").status_code == 403


def test_a_site_without_a_plan_falls_back_to_latitude_and_longitude(viewer, site):
    Camera.objects.create(site=site, name="placed", latitude=31.2, longitude=121.4)
    other = Site.objects.create(name="Elsewhere")
    Camera.objects.create(site=other, name="not this site", latitude=1, longitude=1)
    data = viewer.get("/map/data.json", {"site": site.pk}).json()
    assert data["plan"] is None and [camera["name"] for camera in data["cameras"]] == ["placed"]


def test_the_map_page_loads_plotly_from_our_host(viewer):
    page = viewer.get("/map/").content.decode()
    assert 'src="/static/plotly/plotly.min.js"' in page and 'data-url="/map/data.json"' in page


def test_a_site_that_is_not_an_id_is_not_found(viewer):
    for path in ["/map/", "/map/data.json"]:
        assert viewer.get(path, {"site": "abc"}).status_code == 404
        assert viewer.get(path, {"site": "999999"}).status_code == 404
