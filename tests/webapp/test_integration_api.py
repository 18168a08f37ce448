"""The read API for integrations: read-only API keys (`manage.py create_api_key`, shown once, stored hashed),
`/api/v1/sites/` and `/api/v1/cameras/` with zones, state and latest count, cursor pages on every list (alerts
included), and Swagger UI served from the app's own files."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import ago, frame_with_result
from webapp.accounts.models import ApiKey
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site, Zone, hash_token

pytestmark = pytest.mark.django_db


def create_api_key(name: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", name, "--role", "viewer", stdout=out, stderr=err)
    assert "Bearer" in err.getvalue()
    return out.getvalue().strip()


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def reader() -> APIClient:
    return key_client(create_api_key("home-assistant"))


def test_the_printed_key_is_stored_as_a_hash_and_a_revoked_one_reads_nothing(site):
    key = create_api_key("grafana")
    stored = ApiKey.objects.get(name="grafana")
    assert stored.key_hash == hash_token(key) != key and stored.key_prefix == key[:8]
    assert key_client(key).get("/api/v1/sites/").status_code == 200
    assert ApiKey.objects.get(pk=stored.pk).last_used_at is not None

    ApiKey.objects.filter(pk=stored.pk).update(is_active=False)
    refused = key_client(key).get("/api/v1/sites/")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert key_client("not-a-key").get("/api/v1/sites/").status_code == 401
    assert APIClient().get("/api/v1/cameras/").status_code in (401, 403)


def test_cameras_come_with_their_zones_state_and_latest_count(reader, camera, other_camera):
    zone = Zone.objects.create(camera=camera, name="gate", polygon=[[0, 0], [10, 0], [10, 10]], alert_threshold=5)
    frame = frame_with_result(camera, ago(minutes=1), 42.0, {zone: 7.0})

    body = reader.get("/api/v1/cameras/").json()

    assert body["next"] is None and body["previous"] is None
    first, second = body["results"]
    assert (first["id"], first["site"], first["state"], first["open_alerts"]) == (camera.pk, camera.site_id, "live", 0)
    assert first["zones"] == [
        {"id": zone.pk, "name": "gate", "polygon": [[0, 0], [10, 0], [10, 10]], "alert_threshold": 5.0,
         "density_threshold": None, "area_m2": None}
    ]  # fmt: skip
    assert first["latest"]["frame"] == frame.pk and first["latest"]["count"] == 42.0
    assert first["latest"]["zones"] == {"gate": 7.0}
    assert (second["id"], second["state"], second["latest"]) == (other_camera.pk, "new", None)
    only = reader.get("/api/v1/cameras/", {"site": camera.site_id + 1000}).json()["results"]
    assert only == []


def test_sites_list_their_cameras(reader, camera, other_camera):
    lone = Site.objects.create(name="Depot", time_zone="Asia/Shanghai")
    body = reader.get("/api/v1/sites/").json()
    station = {"id": camera.site_id, "name": "Central Station", "time_zone": "UTC"}
    assert body["results"] == [
        {**station, "cameras": sorted([camera.pk, other_camera.pk])},
        {"id": lone.pk, "name": "Depot", "time_zone": "Asia/Shanghai", "cameras": []},
    ]


def test_every_list_pages_with_a_cursor_alerts_included(reader, site, camera):
    for number in range(5):
        Camera.objects.create(site=site, name=f"Extra {number}")
    frame = frame_with_result(camera, ago(hours=1), 80.0)
    for minutes in range(7):
        Alert.objects.create(
            camera=camera, threshold=50, value=60, peak=60, frame=frame, raised_at=ago(minutes=minutes)
        )

    for url, key, total in (("/api/v1/cameras/", "results", 6), ("/api/v1/alerts/", "alerts", 7)):
        seen, page_url = [], f"{url}?limit=2"
        while page_url:
            page = reader.get(page_url).json()
            seen += [row["id"] for row in page[key]]
            page_url = page["next"]
        assert len(seen) == len(set(seen)) == total
    raised = [row["raised_at"] for row in reader.get("/api/v1/alerts/").json()["alerts"]]
    assert raised == sorted(raised, reverse=True)  # newest first


def test_a_key_reads_series_but_writes_nothing(reader, camera):
    assert reader.get(f"/api/v1/cameras/{camera.pk}/counts/").status_code == 200
    upload = reader.post("/api/v1/frames/", {"camera": camera.pk}, format="multipart")
    assert upload.status_code == 401  # only gateway tokens are known there
    recount = reader.post(f"/api/v1/cameras/{camera.pk}/recounts/", {"from": ago(hours=1), "to": ago(minutes=1)})
    assert recount.status_code == 403


def test_swagger_ui_is_served_from_the_apps_own_files(viewer):
    page = viewer.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "/api/schema/" in html
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert all(finders.find(asset.split("?")[0]) for asset in assets)


@pytest.mark.parametrize("path", ["/api/v1/cameras/", "/api/v1/sites/"])
def test_a_gateway_token_on_peoples_endpoints_is_refused_not_an_error(api, path):
    """A gateway is no person: it holds no role (it once answered 500, 'Gateway' has no attribute 'is_superuser')."""
    answer = api.get(path)
    assert answer.status_code == 403, answer.content
