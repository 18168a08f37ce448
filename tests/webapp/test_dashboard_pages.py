"""The operator pages: sign-in required, the camera list and a camera's page, and plotly served from our own host."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from tests.webapp.conftest import counted_frame
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Frame

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def debug(settings):
    """The embedded set-up (DEBUG on, the default): static files come from the finders, without collectstatic.

    pytest-django turns DEBUG off, and with DEBUG off the manifest storage wants a collectstatic manifest.
    """
    settings.DEBUG = True


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_user("operator", password="not-used")
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/cameras/1/"])
def test_pages_need_a_signed_in_user(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_the_camera_list_shows_each_camera_and_its_latest_count(operator, camera, other_camera):
    counted_frame(camera, datetime(2025, 3, 10, 8, 0, tzinfo=UTC), 12.0)
    latest = counted_frame(camera, datetime(2025, 3, 10, 9, 0, tzinfo=UTC), 37.4)

    response = operator.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Concourse" in page and "Platform 4" in page
    assert f'href="/cameras/{camera.pk}/"' in page and f'href="/cameras/{other_camera.pk}/"' in page
    rows = {row["camera"].pk: row["result"] for row in response.context["rows"]}
    assert rows == {camera.pk: latest.result, other_camera.pk: None}
    assert '<span class="count">37</span>' in page
    assert "no counted frame yet" in page  # the other camera


def test_the_camera_list_says_when_there_are_no_cameras(operator):
    response = operator.get("/")
    assert response.status_code == 200
    assert "No cameras yet" in response.content.decode()


def test_a_camera_page_shows_the_latest_frame_zones_and_the_series(operator, camera):
    zone = Zone.objects.create(camera=camera, name="ticket hall", polygon=[[0, 0], [512, 0], [512, 768], [0, 768]])
    frame = counted_frame(camera, datetime(2025, 3, 10, 9, 0, tzinfo=UTC), 37.4, {zone: 20.4})
    Frame.objects.create(camera=camera, captured_at=frame.captured_at, content_hash="1" * 64, width=8, height=8)

    response = operator.get(f"/cameras/{camera.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Concourse</h1>" in page
    assert '<span class="count">37.4</span>' in page
    assert "<td>ticket hall</td><td>20.4</td>" in page
    assert "1 frame waiting to be counted" in page
    assert f'data-density-url="/api/v1/frames/{frame.pk}/density.json"' in page
    assert f'data-counts-url="/api/v1/cameras/{camera.pk}/counts/"' in page
    assert 'src="/static/plotly/plotly.min.js"' in page


def test_a_camera_page_without_results_says_so(operator, camera):
    response = operator.get(f"/cameras/{camera.pk}/")
    assert response.status_code == 200
    assert "No counted frame yet." in response.content.decode()


def test_an_unknown_camera_is_not_found(operator):
    assert operator.get(f"/cameras/{Camera.objects.count() + 1000}/").status_code == 404


def test_plotly_is_served_from_static(client):
    response = client.get("/static/plotly/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert len(body) > 1_000_000
    assert b"plotly.js" in body[:1000]
