"""The calibration REST API: marked frames, suggestions, proposals, jobs, weights versions and the gateway's ONNX."""

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from counting.density_files import density_npz
from tests.factories import calibrated_weights, gateway_with_token, queued_frame, token_client
from tests.stored_media import stored_files
from webapp.accounts.roles import Role
from webapp.calibration.models import CalibrationJob, MarkedFrame
from webapp.ingest.models import Frame, Result

pytestmark = pytest.mark.django_db


def url(camera, tail: str) -> str:
    return f"/api/v1/cameras/{camera.pk}/{tail}"


def post_json(client, path: str, body: object):
    return client.post(path, json.dumps(body), content_type="application/json")


def marked_files() -> list:
    return stored_files("calibration")


def mark(camera, data: bytes, points: list, frame: Frame | None = None) -> MarkedFrame:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    marked = MarkedFrame(camera=camera, frame=frame, width=width, height=height, points=points)
    marked.image.save("marked.jpg", ContentFile(data), save=False)
    marked.save()
    return marked


def done_frame(camera, data: bytes, count: float, density: np.ndarray | None = None, **fields) -> Frame:
    frame = queued_frame(camera, data, status=Frame.Status.DONE, **fields)
    result = Result(frame=frame, count=count, model_name="csrnet-lite", model_version="t@0", inference_ms=1.0)
    grid = density if density is not None else np.full((frame.height // 8, frame.width // 8), 0.0)
    result.density.save("density.npz", ContentFile(density_npz(grid)), save=False)
    result.save()
    return frame


# ---- marked frames -------------------------------------------------------------------------------------------------


def test_an_operator_marks_an_uploaded_frame_and_the_image_is_copied(operator, camera, small_jpeg_bytes):
    frame = queued_frame(camera, small_jpeg_bytes)

    response = post_json(operator, url(camera, "marked-frames/"), {"frame": frame.pk, "points": [[10, 20], [319.5, 0]]})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["frame"] == frame.pk and (body["width"], body["height"]) == (320, 240)
    assert body["points"] == [[10.0, 20.0], [319.5, 0.0]]
    assert body["marked_by"].startswith("operator")
    marked = MarkedFrame.objects.get(pk=body["id"])
    assert marked.image.name.startswith(f"calibration/{camera.pk}/frames/")
    frame.image.delete()  # retention deleting the raw frame loses no marking
    image = operator.get(body["image_url"])
    assert image.status_code == 200 and b"".join(image.streaming_content) == small_jpeg_bytes


def test_an_image_that_was_never_a_frame_is_marked_with_multipart(operator, camera, small_jpeg_bytes):
    upload = io.BytesIO(small_jpeg_bytes)
    upload.name = "extra.jpg"
    response = operator.post(url(camera, "marked-frames/"), {"image": upload, "points": "[[1, 2]]"})

    assert response.status_code == 201, response.content
    assert response.json()["frame"] is None and response.json()["points"] == [[1.0, 2.0]]


@pytest.mark.parametrize(
    ("points", "says"),
    [
        ([[10, 20], [321, 5]], "outside the 320x240 frame"),
        ([[-1, 5]], "outside"),
        ([[1, "INF"]], "finite"),
        ([[1, 2, 3]], "not [x, y]"),
        ("[[1, 2]]", "list"),
    ],
)
def test_bad_points_are_refused_and_nothing_is_stored(operator, camera, small_jpeg_bytes, points, says):
    frame = queued_frame(camera, small_jpeg_bytes)
    body = json.dumps({"frame": frame.pk, "points": points}).replace('"INF"', "1e999")  # parses as infinity

    response = operator.post(url(camera, "marked-frames/"), body, content_type="application/json")

    assert response.status_code == 400
    assert says in response.json()["points"][0]
    assert not MarkedFrame.objects.exists() and marked_files() == []


def test_a_frame_of_another_camera_is_refused(operator, camera, other_camera, small_jpeg_bytes):
    theirs = queued_frame(other_camera, small_jpeg_bytes)

    response = post_json(operator, url(camera, "marked-frames/"), {"frame": theirs.pk, "points": []})

    assert response.status_code == 400
    assert f"frame {theirs.pk} is a frame of camera {other_camera.pk}" in response.json()["frame"][0]
    assert not MarkedFrame.objects.exists() and marked_files() == []


def test_a_frame_is_marked_once_then_edited(operator, camera, small_jpeg_bytes):
    frame = queued_frame(camera, small_jpeg_bytes)
    first = post_json(operator, url(camera, "marked-frames/"), {"frame": frame.pk, "points": [[1, 1]]}).json()

    again = post_json(operator, url(camera, "marked-frames/"), {"frame": frame.pk, "points": []})
    assert again.status_code == 400 and "marked already" in again.json()["frame"][0]

    path = url(camera, f"marked-frames/{first['id']}/")
    edited = operator.patch(path, json.dumps({"points": [[5, 6], [7, 8]]}), content_type="application/json")
    assert edited.status_code == 200 and edited.json()["points"] == [[5.0, 6.0], [7.0, 8.0]]
    outside = operator.put(path, json.dumps({"points": [[999, 6]]}), content_type="application/json")
    assert outside.status_code == 400
    assert MarkedFrame.objects.get(pk=first["id"]).points == [[5.0, 6.0], [7.0, 8.0]]  # the refused edit lost nothing


def test_deleting_a_marking_deletes_its_copy(operator, camera, small_jpeg_bytes, django_capture_on_commit_callbacks):
    marked = mark(camera, small_jpeg_bytes, [[1, 1]])

    with django_capture_on_commit_callbacks(execute=True):
        response = operator.delete(url(camera, f"marked-frames/{marked.pk}/"))

    assert response.status_code == 204
    assert not MarkedFrame.objects.exists() and marked_files() == []


def test_viewers_read_operators_write_gateways_have_no_access(sign_in, camera, gateway, small_jpeg_bytes):
    marked = mark(camera, small_jpeg_bytes, [[1, 1]])
    viewer = sign_in(Role.VIEWER)
    assert viewer.get(url(camera, "marked-frames/")).json()[0]["id"] == marked.pk
    assert viewer.delete(url(camera, f"marked-frames/{marked.pk}/")).status_code == 403
    assert post_json(viewer, url(camera, "calibrations/"), {}).status_code == 403
    assert sign_in(None).get(url(camera, "marked-frames/")).status_code == 403
    assert token_client(gateway.token).get(url(camera, "marked-frames/")).status_code == 403
    assert MarkedFrame.objects.filter(pk=marked.pk).exists()


# ---- suggestions and proposals -------------------------------------------------------------------------------------


def test_suggested_frames_leave_out_marked_ones_and_spread_over_the_day_and_counts(operator, camera, small_jpeg_bytes):
    day = datetime(2026, 1, 1, tzinfo=UTC)
    # (hour, count): two frames in each of three bands of the day; counts low, middle and high.
    made = {
        count: done_frame(camera, small_jpeg_bytes, count, captured_at=day + timedelta(hours=hour))
        for hour, count in [(1, 1), (2, 60), (9, 30), (10, 31), (17, 2), (18, 61)]
    }
    marked = done_frame(camera, small_jpeg_bytes, 5, captured_at=day + timedelta(hours=3))
    mark(camera, small_jpeg_bytes, [], frame=marked)

    response = operator.get(url(camera, "calibration-frames/"), {"limit": 5})

    assert response.status_code == 200
    picked = {item["frame"]: item["count"] for item in response.json()["frames"]}
    assert marked.pk not in picked
    # One frame from each (band, count level) before a second from any: 30 and 31 share theirs.
    assert set(picked.values()) - {30, 31} == {1, 60, 2, 61} and len({30, 31} & set(picked.values())) == 1
    assert set(picked) <= {frame.pk for frame in made.values()}
    assert operator.get(url(camera, "calibration-frames/"), {"limit": 0}).status_code == 400


def test_proposals_are_the_density_peaks_in_frame_pixels(operator, camera, small_jpeg_bytes):
    density = np.zeros((30, 40), np.float32)
    density[5, 10] = density[20, 30] = 1.0  # two heads
    frame = done_frame(camera, small_jpeg_bytes, 2.0, density)

    response = operator.get(f"/api/v1/frames/{frame.pk}/proposals/")

    assert response.status_code == 200
    assert sorted(response.json()["points"]) == [[84.0, 44.0], [244.0, 164.0]]


# ---- calibration jobs ----------------------------------------------------------------------------------------------


def test_a_calibration_needs_six_marked_frames(operator, camera, small_jpeg_bytes):
    for _ in range(5):
        mark(camera, small_jpeg_bytes, [[1, 1]])

    response = post_json(operator, url(camera, "calibrations/"), {})

    assert response.status_code == 400 and "5 marked frames" in response.json()["detail"]
    assert not CalibrationJob.objects.exists()


def test_a_calibration_is_queued_once_per_camera(
    operator, camera, small_jpeg_bytes, django_capture_on_commit_callbacks
):
    for _ in range(6):
        mark(camera, small_jpeg_bytes, [[1, 1]])

    with django_capture_on_commit_callbacks() as callbacks:
        first = post_json(operator, url(camera, "calibrations/"), {})
    second = post_json(operator, url(camera, "calibrations/"), {})

    assert first.status_code == 202 and len(callbacks) == 1
    assert first.json()["status"] == "queued" and first.json()["status_url"].endswith(
        f"calibrations/{first.json()['id']}/"
    )
    assert second.status_code == 409 and second.json()["id"] == first.json()["id"]
    listed = operator.get(url(camera, "calibrations/")).json()
    assert [job["id"] for job in listed] == [first.json()["id"]]
    assert operator.get(first.json()["status_url"]).json()["switched"] is False


def test_a_job_whose_worker_was_lost_no_longer_blocks_a_new_one(operator, camera, small_jpeg_bytes):
    for _ in range(6):
        mark(camera, small_jpeg_bytes, [[1, 1]])
    lost = CalibrationJob.objects.create(camera=camera, status="running")
    CalibrationJob.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=31))

    response = post_json(operator, url(camera, "calibrations/"), {})

    assert response.status_code == 202
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.message.startswith("lost:")


# ---- weights versions and the gateway's copy -----------------------------------------------------------------------


def test_activating_a_version_and_back_to_the_default(operator, camera, other_camera):
    v1, v2 = calibrated_weights(camera, 1, onnx=b"onnx-bytes"), calibrated_weights(camera, 2, onnx=b"onnx-bytes")
    theirs = calibrated_weights(other_camera, 1, onnx=b"onnx-bytes")

    listed = post_json(operator, url(camera, "weights/activate/"), {"version": v2.pk}).json()
    assert listed["active"] == v2.pk and [v["number"] for v in listed["versions"]] == [1, 2]
    assert post_json(operator, url(camera, "weights/activate/"), {"version": v1.pk}).json()["active"] == v1.pk
    assert post_json(operator, url(camera, "weights/activate/"), {"version": None}).json()["default"]["active"]
    refused = post_json(operator, url(camera, "weights/activate/"), {"version": theirs.pk})
    assert refused.status_code == 400 and "not one of camera" in refused.json()["version"][0]
    camera.refresh_from_db()
    assert camera.active_weights is None


def test_the_gateway_fetches_the_active_onnx_once(camera, other_camera, gateway):
    client = token_client(gateway.token)
    assert client.get(url(camera, "weights.onnx")).status_code == 404  # default weights
    active = calibrated_weights(camera, 1, onnx=b"tuned-onnx")
    camera.active_weights = active
    camera.save()

    response = client.get(url(camera, "weights.onnx"))

    assert response.status_code == 200 and b"".join(response.streaming_content) == b"tuned-onnx"
    assert response["X-Weights-Version"] == f"cam{camera.pk}-v1" and response["ETag"] == f'"cam{camera.pk}-v1"'
    again = client.get(url(camera, "weights.onnx"), HTTP_IF_NONE_MATCH=f'"cam{camera.pk}-v1"')
    assert again.status_code == 304 and again["X-Weights-Version"] == f"cam{camera.pk}-v1"
    assert client.get(url(other_camera, "weights.onnx")).status_code == 403
    other = gateway_with_token("elsewhere", other_camera)
    assert token_client(other.token).get(url(camera, "weights.onnx")).status_code == 403


# ---- recounts ------------------------------------------------------------------------------------------------------


def test_a_recount_needs_a_period(operator, camera, django_capture_on_commit_callbacks):
    assert post_json(operator, url(camera, "recounts/"), {"from": "2026-01-02T00:00:00Z"}).status_code == 400
    backwards = {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    assert post_json(operator, url(camera, "recounts/"), backwards).status_code == 400

    with django_capture_on_commit_callbacks() as callbacks:
        response = post_json(operator, url(camera, "recounts/"), {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02"})

    assert response.status_code == 202 and len(callbacks) == 1
    assert operator.get(response.json()["status_url"]).json()["status"] == "queued"


# ---- the camera page says how far to trust the count ---------------------------------------------------------------


def test_the_camera_page_shows_the_measured_error_and_the_calibrate_link(sign_in, camera):
    page = sign_in(Role.OPERATOR).get(f"/cameras/{camera.pk}/").content.decode()
    assert "Default weights: not adapted or calibrated yet." in page
    assert f'href="/cameras/{camera.pk}/calibrate/"' in page

    camera.active_weights = calibrated_weights(camera, 1, onnx=b"onnx-bytes")
    camera.save()
    page = sign_in(Role.VIEWER).get(f"/cameras/{camera.pk}/").content.decode()
    assert "Calibrated: about ±3 people on frames like these, measured on 12 marked frames (weights v1, " in page
    assert "/calibrate/" not in page  # viewers cannot calibrate
