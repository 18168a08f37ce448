"""GET /api/v1/frames/{id}/ and the files it links to: the frame, its heatmap and its density map."""

import io
import math

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from tests.factories import FRAMES_URL, half_zones, image_upload, queued_frame, token_client, user_with_role
from webapp.accounts.roles import Role
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame
from webapp.ingest.results import Counted, store_result
from workers.tasks import count_frame

pytestmark = pytest.mark.django_db


def upload(api, camera, data: bytes) -> Frame:
    response = api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(data)}, format="multipart")
    assert response.status_code == 202, response.content
    return Frame.objects.get(pk=response.json()["id"])


@pytest.fixture
def queued(api, camera, jpeg_bytes) -> Frame:
    for name, polygon in half_zones(1024, 768).items():
        Zone.objects.create(camera=camera, name=name, polygon=polygon)
    return upload(api, camera, jpeg_bytes)


@pytest.fixture
def counted(queued, settings) -> Frame:
    """The real 1024x768 frame, uploaded and then counted in this process by the real model."""
    settings.CROWDSCOPE_HEATMAP_MAX_SIDE = 256  # a smaller PNG to write: quicker
    count_frame.apply(args=[queued.pk]).get()
    queued.refresh_from_db()
    assert queued.status == Frame.Status.DONE, queued.error
    return queued


@pytest.fixture
def with_result(camera, jpeg_bytes, settings) -> Frame:
    """A frame with a result stored by the real code path, from a made-up density map (no model run)."""
    settings.CROWDSCOPE_HEATMAP_MAX_SIDE = 64
    frame = queued_frame(camera, jpeg_bytes)
    density = np.full((96, 128), 0.01, dtype=np.float32)
    store_result(
        frame,
        Counted(float(density.sum()), density, {}, {}, "csrnet-lite", "made-up.pt@000000000000", inference_ms=1.0),
    )
    return frame


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_frame_is_queued_until_it_is_counted(api, queued):
    response = api.get(f"{FRAMES_URL}{queued.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "queued"
    assert (body["count"], body["zones"], body["model"], body["error"]) == (None, [], None, None)
    assert (body["width"], body["height"]) == (1024, 768)
    assert body["links"] == {"image": f"http://testserver{FRAMES_URL}{queued.pk}/image"}


def test_no_density_before_counting(api, queued):
    for link in ("heatmap.png", "density.npz", "density.json"):
        response = api.get(f"{FRAMES_URL}{queued.pk}/{link}")
        assert response.status_code == 404
        assert "queued" in response.json()["detail"]


def test_a_counted_frame_has_its_count_zones_model_and_links(api, counted):
    response = api.get(f"{FRAMES_URL}{counted.pk}/")

    assert response.status_code == 200
    body = response.json()
    result = counted.result
    assert body["status"] == "done"
    assert body["count"] == result.count
    assert math.isfinite(body["count"]) and body["count"] > 0
    assert [zone["name"] for zone in body["zones"]] == ["left", "right"]
    assert sum(zone["count"] for zone in body["zones"]) == pytest.approx(body["count"], rel=1e-3)
    assert body["model"]["name"] == "csrnet-lite"
    assert body["model"]["version"] == result.model_version
    assert body["model"]["version"].split("@")[0].endswith(".pt")
    base = f"http://testserver{FRAMES_URL}{counted.pk}"
    assert body["links"] == {
        "image": f"{base}/image",
        "heatmap": f"{base}/heatmap.png",
        "density": f"{base}/density.npz",
        "density_values": f"{base}/density.json",
    }


def test_the_image_link_returns_the_uploaded_jpeg(api, counted, jpeg_bytes):
    response = api.get(api.get(f"{FRAMES_URL}{counted.pk}/").json()["links"]["image"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert body_of(response) == jpeg_bytes


def test_the_heatmap_link_returns_a_png_scaled_to_the_heatmap_max_side(api, counted):
    response = api.get(api.get(f"{FRAMES_URL}{counted.pk}/").json()["links"]["heatmap"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(body_of(response))) as heatmap:
        assert (heatmap.format, heatmap.mode, heatmap.size) == ("PNG", "P", (256, 192))
        alpha = np.asarray(heatmap.convert("RGBA"))[:, :, 3]
    assert alpha.min() == 0 and alpha.max() > 0  # clear where nobody is, coloured where people are


def test_the_density_npz_sums_to_the_count(api, counted):
    response = api.get(api.get(f"{FRAMES_URL}{counted.pk}/").json()["links"]["density"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    with np.load(io.BytesIO(body_of(response))) as stored:
        density, stride = stored["density"], int(stored["stride"])
    assert density.dtype == np.float16
    assert density.shape == (768 // 8, 1024 // 8)
    assert stride == 8
    assert float(density.sum(dtype=np.float64)) == pytest.approx(counted.result.count, rel=1e-2)


def test_the_density_json_sums_to_the_count(api, counted):
    response = api.get(api.get(f"{FRAMES_URL}{counted.pk}/").json()["links"]["density_values"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["stride"] == 8
    assert body["shape"] == [96, 128]
    assert len(body["values"]) == 96 and {len(row) for row in body["values"]} == {128}
    assert body["count"] == counted.result.count
    assert sum(map(sum, body["values"])) == pytest.approx(counted.result.count, rel=1e-2)


FRAME_PATHS = ["", "image", "heatmap.png", "density.npz", "density.json"]


def test_a_gateway_cannot_read_another_gateways_frame(with_result, api, other_gateway):
    other = token_client(other_gateway.token)
    for path in FRAME_PATHS:
        assert api.get(f"{FRAMES_URL}{with_result.pk}/{path}").status_code == 200, path
        assert other.get(f"{FRAMES_URL}{with_result.pk}/{path}").status_code == 404, path


def test_a_signed_in_viewer_can_read_any_frame(with_result):
    client = APIClient()
    client.force_login(user_with_role("viewer", Role.VIEWER))
    for path in FRAME_PATHS:
        assert client.get(f"{FRAMES_URL}{with_result.pk}/{path}").status_code == 200, path


def test_a_signed_in_person_without_a_role_reads_no_frame(with_result):
    client = APIClient()
    client.force_login(user_with_role("newcomer", None))
    for path in FRAME_PATHS:
        assert client.get(f"{FRAMES_URL}{with_result.pk}/{path}").status_code == 404, path


def test_nobody_else_can_read_a_frame(with_result):
    for path in FRAME_PATHS:
        assert APIClient().get(f"{FRAMES_URL}{with_result.pk}/{path}").status_code in (401, 403), path


def test_an_inactive_person_cannot_read_a_frame(with_result, django_user_model):
    client = APIClient()
    client.force_login(user_with_role("former-operator", Role.OPERATOR, is_active=False))
    assert client.get(f"{FRAMES_URL}{with_result.pk}/").status_code in (401, 403, 404)


def test_an_unknown_frame_is_not_found(api):
    assert api.get(f"{FRAMES_URL}999999/").status_code == 404
