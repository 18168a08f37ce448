"""POST /api/v1/edge-results/: results a gateway counted itself are stored like the server's own (zone counts from
the server's zones, heatmap, alerts, the model that counted), once per Idempotency-Key; bad input stores nothing."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import half_zones, token_client
from tests.hostile_files import inflating_npz
from tests.stored_media import stored_files
from webapp.alerts.models import Alert
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame, Result

pytestmark = pytest.mark.django_db

URL = "/api/v1/edge-results/"
WIDTH, HEIGHT = 320, 240


def npz(density: np.ndarray, key: str = "density") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: density.astype(np.float16)})
    return SimpleUploadedFile("density.npz", buffer.getvalue(), content_type="application/octet-stream")


def a_map() -> np.ndarray:
    """People on the left half only: 12 on a 30x40 grid (a 320x240 frame at 1/8)."""
    density = np.zeros((30, 40), np.float32)
    density[10:14, 5:8] = 1.0
    return density


def fields(camera, density=None, **changes) -> dict:
    density = a_map() if density is None else density
    return {
        "camera": camera.pk,
        "captured_at": "2026-11-30T08:00:00Z",
        "count": f"{float(density.astype(np.float16).astype(np.float32).sum()):.4f}",
        "density": npz(density),
        "width": WIDTH,
        "height": HEIGHT,
        "model": "skynet-count",
        "model_version": "skynet-count.onnx@0123456789ab",
        "inference_ms": "41.5",
        **changes,
    }


def test_an_edge_result_is_stored_like_a_counted_frame(api, camera):
    for name, polygon in half_zones(WIDTH, HEIGHT).items():
        Zone.objects.create(camera=camera, name=name, polygon=polygon)
    camera.alert_threshold = 10
    camera.save()

    response = api.post(URL, fields(camera), format="multipart")

    assert response.status_code == 201, response.content
    frame = Frame.objects.get()
    assert (frame.status, frame.image.name, frame.width, frame.height) == (Frame.Status.DONE, "", WIDTH, HEIGHT)
    result = frame.result
    assert result.count == pytest.approx(12.0) and result.model_name == "skynet-count" and result.heatmap
    zones = {zone.zone_name: zone.count for zone in result.zone_counts.all()}
    assert zones == pytest.approx({"left": 12.0, "right": 0.0})
    assert Alert.objects.get().value == pytest.approx(12.0)
    detail = api.get(f"/api/v1/frames/{frame.pk}/").json()
    assert detail["model"]["name"] == "skynet-count" and detail["links"]["image"] is None
    assert detail["counted_on"] == "gateway"
    stored = np.load(io.BytesIO(api.get(f"/api/v1/frames/{frame.pk}/density.npz").getvalue()))["density"]
    np.testing.assert_allclose(stored.astype(np.float32), a_map(), atol=1e-3)


def test_a_result_sent_again_with_its_key_is_stored_once(api, camera):
    first = api.post(URL, fields(camera), format="multipart", HTTP_IDEMPOTENCY_KEY="edge-1")
    again = api.post(URL, fields(camera), format="multipart", HTTP_IDEMPOTENCY_KEY="edge-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Result.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"density": np.zeros((29, 40))}, "density"),  # not the frame's grid
        ({"density": np.full((30, 40), -0.1)}, "density"),
        ({"density": np.full((30, 40), np.nan)}, "density"),
        ({"count": "99"}, "count"),  # not the map's sum
        ({"width": "0"}, "width"),
        ({"captured_at": "yesterday"}, "captured_at"),
        ({"captured_at": "2099-01-01T00:00:00Z"}, "captured_at"),  # would pin the camera's latest count
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_results_are_refused_and_nothing_is_stored(api, camera, changes, field):
    density = changes.pop("density", None)
    sent = fields(camera, density if density is not None else None, **changes)
    if density is not None:
        sent["count"] = "0"  # so that only the map itself is wrong
    response = api.post(URL, sent, format="multipart")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Frame.objects.exists() and stored_files() == []


def test_a_map_that_would_inflate_far_past_its_size_is_refused_from_its_header(api, camera):
    sent = fields(camera)
    bomb = inflating_npz((6_000, 6_000))  # 72 MB inflated; 20000 x 20000 (800 MB) is refused alike
    assert len(bomb) < 4 * 1024 * 1024  # within the size limit: only its header can give it away
    sent["density"] = SimpleUploadedFile("density.npz", bomb, content_type="application/octet-stream")
    response = api.post(URL, sent, format="multipart")
    assert response.status_code == 400
    assert "shape (6000, 6000) does not fit a 320x240 frame" in response.json()["density"][0]
    assert not Frame.objects.exists()


def test_an_edge_result_over_the_body_limit_is_refused_before_it_is_read(api, camera):
    sent = fields(camera)
    sent["density"] = SimpleUploadedFile("density.npz", bytes(5 * 1024 * 1024), content_type="application/octet-stream")
    response = api.post(URL, sent, format="multipart")
    assert response.status_code == 413 and "at most 4,194,304 bytes" in response.json()["detail"]
    assert not Frame.objects.exists()


def test_a_file_that_is_not_a_density_map_is_refused(api, camera):
    sent = fields(camera, density=a_map())
    sent["density"] = SimpleUploadedFile("density.npz", b"not a zip", content_type="application/octet-stream")
    assert api.post(URL, sent, format="multipart").status_code == 400
    sent["density"] = npz(a_map(), key="map")
    assert "density" in api.post(URL, sent, format="multipart").json()
    assert not Frame.objects.exists()


def test_only_the_cameras_gateway_may_send_its_results(camera, other_gateway):
    response = token_client(other_gateway.token).post(URL, fields(camera), format="multipart")
    assert response.status_code == 403
    assert token_client("no-such-token").post(URL, fields(camera), format="multipart").status_code == 401
    assert not Frame.objects.exists()
