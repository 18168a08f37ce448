"""Cameras that keep their frames with heads blurred (Camera.blur_heads): the worker counts the frame as uploaded and
stores it blurred where its density map shows people; no page, API answer or email shows a frame of such a camera
that is not blurred; recounts, marking and adaptation leave blurred frames alone."""

import io
import re
from datetime import timedelta

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from counting.images import load_rgb
from counting.privacy import blur_dense_regions, dense_mask
from tests.factories import FRAMES_URL, image_upload, queued_frame, token_client
from tests.stored_media import stored_bytes, stored_files
from webapp.calibration.adaptation import stored_frames
from webapp.calibration.jobs import run_recount
from webapp.calibration.models import RecountJob
from webapp.ingest.models import Frame, ReplacedUpload, Result
from webapp.ingest.privacy import is_blurred, write_blurred_copy
from webapp.ingest.results import Counted, store_result
from webapp.reports.charts import peak_heatmap
from workers.tasks import count_frame, count_stored_frame, delete_replaced_uploads

pytestmark = pytest.mark.django_db


@pytest.fixture
def blurring(camera):
    camera.blur_heads = True
    camera.save()
    return camera


@pytest.fixture
def run_task(django_capture_on_commit_callbacks):
    """The count task in this process with the real model; what it leaves for after the commit runs too (the
    upload's deletion), as it does in a worker."""

    def run(frame: Frame) -> Frame:
        with django_capture_on_commit_callbacks(execute=True):
            count_frame.apply(args=[frame.pk]).get()  # .get() raises whatever the task raised
        frame.refresh_from_db()
        assert frame.status == Frame.Status.DONE, frame.error
        return frame

    return run


def stored_density(result: Result) -> np.ndarray:
    with result.density.open("rb") as handle, np.load(handle) as stored:
        return stored["density"].astype(np.float32)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def counted_unblurred(camera, data: bytes, count: float = 40.0) -> Frame:
    """A frame counted while its camera did not blur (a made-up map: no model run), its upload kept as it was."""
    frame = queued_frame(camera, data, captured_at=timezone.now() - timedelta(minutes=5))
    density = np.full((-(-frame.height // 8), -(-frame.width // 8)), count / 1200, dtype=np.float32)
    density *= count / density.sum()
    store_result(frame, Counted(count, density, {}, {}, "csrnet-lite", "made-up.pt@0", 1.0))
    frame.refresh_from_db()
    return frame


def test_the_worker_stores_the_frame_blurred_where_people_are_and_counts_it_as_uploaded(
    blurring, other_camera, jpeg_path, jpeg_bytes, run_task
):
    frame = queued_frame(blurring, jpeg_bytes)
    upload = frame.image.name
    frame = run_task(frame)
    plain = run_task(queued_frame(other_camera, jpeg_bytes))  # the same file, on a camera that does not blur

    # The count, the zones' source and the heatmap are the unblurred frame's.
    assert frame.result.count == plain.result.count
    np.testing.assert_array_equal(stored_density(frame.result), stored_density(plain.result))
    assert stored_bytes(frame.result.heatmap.name) == stored_bytes(plain.result.heatmap.name)

    # The upload is gone; the frame's image is the blurred copy, in the upload's format and size.
    assert is_blurred(frame.image) and not is_blurred(plain.image)
    assert not default_storage.exists(upload) and not ReplacedUpload.objects.exists()
    assert stored_files(f"frames/{blurring.pk}") == [frame.image.name]
    with Image.open(io.BytesIO(stored_bytes(frame.image.name))) as kept:
        assert (kept.format, kept.size) == ("JPEG", (1024, 768))

    # Changed where the density map shows people, as it was elsewhere (but for JPEG's second encoding).
    original = load_rgb(jpeg_path).astype(np.int16)
    stored = load_rgb(stored_bytes(frame.image.name)).astype(np.int16)
    mask = dense_mask(
        stored_density(frame.result),
        768,
        1024,
        django_settings.CROWDSCOPE_BLUR_DENSITY_LEVEL,
        django_settings.CROWDSCOPE_BLUR_MARGIN_PIXELS,
    )
    assert 0.1 < mask.mean() < 0.9
    difference = np.abs(stored - original).mean(axis=2)
    assert difference[mask].mean() > 10
    assert difference[~mask].mean() < 2


def test_the_frame_is_not_served_before_it_is_blurred(
    blurring, other_camera, api, gateway, viewer, jpeg_bytes, run_task
):
    """Uploaded, not yet counted: the stored file is the upload, and neither people nor the gateway get it; once
    counted, the blurred copy is served. A camera that does not blur serves its upload at once."""
    gateway.cameras.add(other_camera)
    uploaded = {}
    for camera in (blurring, other_camera):
        response = api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(jpeg_bytes)}, format="multipart")
        assert response.status_code == 202, response.content
        uploaded[camera] = Frame.objects.get(pk=response.json()["id"])
    frame = uploaded[blurring]
    image_url = f"{FRAMES_URL}{frame.pk}/image"

    for client in (viewer, token_client(gateway.token)):
        refused = client.get(image_url)
        assert refused.status_code == 404
        assert "heads blurred" in refused.json()["detail"]
        assert client.get(f"{FRAMES_URL}{frame.pk}/").json()["links"]["image"] is None
    plain = viewer.get(f"{FRAMES_URL}{uploaded[other_camera].pk}/image")
    assert plain.status_code == 200 and body_of(plain) == jpeg_bytes

    frame = run_task(frame)

    served = viewer.get(image_url)
    assert served.status_code == 200
    assert body_of(served) == stored_bytes(frame.image.name) != jpeg_bytes
    assert viewer.get(f"{FRAMES_URL}{frame.pk}/").json()["links"]["image"].endswith(image_url)


def test_frames_counted_before_blurring_was_turned_on_are_shown_nowhere(camera, viewer, jpeg_bytes, settings):
    frame = counted_unblurred(camera, jpeg_bytes)
    image_url = f"{FRAMES_URL}{frame.pk}/image"
    assert viewer.get(image_url).status_code == 200
    assert peak_heatmap(frame.result, "frame") != peak_heatmap(frame.result, "none")

    camera.blur_heads = True
    camera.save()

    assert viewer.get(image_url).status_code == 404
    assert viewer.get(f"{FRAMES_URL}{frame.pk}/").json()["links"]["image"] is None
    for page in ("/", f"/cameras/{camera.pk}/", f"/cameras/{camera.pk}/zones/"):
        response = viewer.get(page)
        assert response.status_code == 200, page
        assert image_url not in response.content.decode(), page
    assert 'data-image-url=""' in viewer.get(f"/cameras/{camera.pk}/").content.decode()
    assert "heads blurred" in viewer.get(f"/cameras/{camera.pk}/").content.decode()
    scrubber = viewer.get(f"/cameras/{camera.pk}/frames.json").json()["frames"]
    assert [item["image"] for item in scrubber] == [None]
    # The report email lays the heatmap over a dark ground, as for a frame not kept.
    result = Result.objects.get(frame=frame)  # read afresh, as the email does
    assert peak_heatmap(result, "frame") == peak_heatmap(result, "none")


def test_a_downscaled_copy_of_a_blurred_frame_is_made_of_the_blurred_pixels(
    blurring, jpeg_path, jpeg_bytes, settings, run_task
):
    settings.CROWDSCOPE_FRAME_RETENTION = "downscale"
    settings.CROWDSCOPE_RETAINED_FRAME_MAX_SIDE = 256

    frame = run_task(queued_frame(blurring, jpeg_bytes))

    assert is_blurred(frame.image) and stored_files(f"frames/{blurring.pk}") == [frame.image.name]
    kept = load_rgb(stored_bytes(frame.image.name)).astype(np.int16)
    assert kept.shape == (192, 256, 3)
    original = load_rgb(jpeg_path)
    blurred, _ = blur_dense_regions(
        original,
        stored_density(frame.result),
        settings.CROWDSCOPE_BLUR_DENSITY_LEVEL,
        settings.CROWDSCOPE_BLUR_MARGIN_PIXELS,
    )

    def small(rgb: np.ndarray) -> np.ndarray:
        image = Image.fromarray(rgb)
        image.thumbnail((256, 256), Image.Resampling.LANCZOS)
        return np.asarray(image).astype(np.int16)

    assert np.abs(kept - small(blurred)).mean() < np.abs(kept - small(original)).mean() / 3


def test_an_upload_left_by_a_worker_that_died_after_the_commit_is_swept(
    blurring, small_jpeg_bytes, django_capture_on_commit_callbacks
):
    """The worker stores the result, then dies before the upload's delete, which runs only after the commit: the
    unblurred upload, named by no frame, is deleted by the beat's sweep once its worker's own chance has passed."""
    frame = queued_frame(blurring, small_jpeg_bytes)
    upload = frame.image.name
    with django_capture_on_commit_callbacks(execute=False) as left_undone:
        count_frame.apply(args=[frame.pk]).get()
    assert left_undone, "the upload's delete runs after the commit"
    frame.refresh_from_db()
    assert is_blurred(frame.image) and default_storage.exists(upload)
    assert list(ReplacedUpload.objects.values_list("name", flat=True)) == [upload]

    assert delete_replaced_uploads.apply().get() == 0  # within the grace: its worker may be deleting it now
    assert default_storage.exists(upload)

    ReplacedUpload.objects.update(replaced_at=timezone.now() - timedelta(minutes=2))
    assert delete_replaced_uploads.apply().get() == 1
    assert not default_storage.exists(upload) and not ReplacedUpload.objects.exists()
    assert stored_files(f"frames/{blurring.pk}") == [frame.image.name]
    assert delete_replaced_uploads.apply().get() == 0


def test_a_storage_that_refuses_the_uploads_delete_leaves_it_for_the_sweep(
    blurring, small_jpeg_bytes, run_task, monkeypatch
):
    frame = queued_frame(blurring, small_jpeg_bytes)
    upload = frame.image.name

    def refuse(name: str) -> None:
        raise OSError("the storage is away")

    with monkeypatch.context() as storage_away:
        storage_away.setattr(default_storage, "delete", refuse)
        run_task(frame)  # on_commit(robust=True): the failed delete is logged, the result stays stored
        assert default_storage.exists(upload) and ReplacedUpload.objects.filter(name=upload).exists()

        ReplacedUpload.objects.update(replaced_at=timezone.now() - timedelta(minutes=2))
        with pytest.raises(OSError, match="away"):
            delete_replaced_uploads.apply().get()
        assert ReplacedUpload.objects.filter(name=upload).exists()  # kept for the next sweep

    assert delete_replaced_uploads.apply().get() == 1
    assert not default_storage.exists(upload) and not ReplacedUpload.objects.exists()


def test_a_result_stored_twice_leaves_no_blurred_copy_behind(blurring, small_jpeg_bytes, run_task):
    frame = run_task(queued_frame(blurring, small_jpeg_bytes))
    again = Frame.objects.select_related("camera").get(pk=frame.pk)
    rgb = load_rgb(stored_bytes(again.image.name))
    density = stored_density(frame.result)
    copy = write_blurred_copy(again, rgb, density)
    assert default_storage.exists(copy.name) and copy.name != frame.image.name

    assert store_result(again, Counted(1.0, density, {}, {}, "csrnet-lite", "t@0", 1.0), copy) is None

    assert not default_storage.exists(copy.name)
    assert Frame.objects.get(pk=frame.pk).image.name == frame.image.name
    assert stored_files(f"frames/{blurring.pk}") == [frame.image.name]


def test_a_result_that_fails_to_store_leaves_the_upload_as_the_frames_image(blurring, small_jpeg_bytes, monkeypatch):
    """The switch to the blurred copy is in the result's transaction: a failure there keeps the upload."""
    frame = queued_frame(blurring, small_jpeg_bytes)
    upload = frame.image.name
    density = np.zeros((30, 40), np.float32)
    copy = write_blurred_copy(frame, load_rgb(small_jpeg_bytes), density)

    def refuse(*args) -> None:
        raise RuntimeError("the latest counts table is locked")

    monkeypatch.setattr("webapp.ingest.results.record_latest", refuse)
    with pytest.raises(RuntimeError, match="locked"):
        store_result(frame, Counted(0.0, density, {}, {}, "csrnet-lite", "t@0", 1.0), copy)

    assert not default_storage.exists(copy.name)
    assert Frame.objects.get(pk=frame.pk).image.name == upload and default_storage.exists(upload)
    assert not Result.objects.exists()


def test_a_recount_keeps_the_counts_of_blurred_frames(camera, small_jpeg_bytes, run_task):
    """Counting the blurred pixels would undercount the people there: such frames keep their result."""
    before = run_task(queued_frame(camera, small_jpeg_bytes, captured_at=timezone.now() - timedelta(hours=2)))
    camera.blur_heads = True
    camera.save()
    blurred = run_task(queued_frame(camera, small_jpeg_bytes, captured_at=timezone.now() - timedelta(hours=1)))
    Result.objects.filter(pk__in=[before.result.pk, blurred.result.pk]).update(count=999.0)
    job = RecountJob.objects.create(
        camera=camera, period_from=timezone.now() - timedelta(days=1), period_to=timezone.now(), message=""
    )

    job = run_recount(job.pk, count_stored_frame)

    assert (job.status, job.frames) == (RecountJob.Status.DONE, 1), job.message
    assert "1 skipped" in job.message and "blurred" in job.message
    assert Result.objects.get(frame=blurred).count == 999.0
    assert Result.objects.get(frame=before).count == pytest.approx(before.result.count)


def test_blurred_frames_are_neither_marked_nor_suggested_nor_adapted_on(camera, operator, small_jpeg_bytes, run_task):
    before = run_task(queued_frame(camera, small_jpeg_bytes, captured_at=timezone.now() - timedelta(hours=2)))
    camera.blur_heads = True
    camera.save()
    blurred = run_task(queued_frame(camera, small_jpeg_bytes, captured_at=timezone.now() - timedelta(hours=1)))
    marked_frames = f"/api/v1/cameras/{camera.pk}/marked-frames/"
    suggestions = f"/api/v1/cameras/{camera.pk}/calibration-frames/"

    refused = operator.post(marked_frames, {"frame": blurred.pk, "points": []}, content_type="application/json")
    assert refused.status_code == 400
    assert re.search(r"kept with heads blurred: heads cannot be marked", str(refused.json()["frame"]))
    # Nor an unblurred frame of a camera that blurs now: a marking keeps a copy, shown to whoever marks.
    refused = operator.post(marked_frames, {"frame": before.pk, "points": []}, content_type="application/json")
    assert refused.status_code == 400 and "blurs heads" in str(refused.json()["frame"])
    assert operator.get(suggestions).json()["frames"] == []

    camera.blur_heads = False
    camera.save()
    assert [item["frame"] for item in operator.get(suggestions).json()["frames"]] == [before.pk]
    assert list(stored_frames(camera)) == [before]
    accepted = operator.post(marked_frames, {"frame": before.pk, "points": []}, content_type="application/json")
    assert accepted.status_code == 201, accepted.content


@pytest.mark.parametrize(("image_format", "extension"), [("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")])
def test_the_blurred_copy_keeps_the_uploads_format(blurring, small_jpeg_bytes, image_format, extension):
    rgb = load_rgb(small_jpeg_bytes)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=image_format)
    frame = queued_frame(blurring, buffer.getvalue(), extension=extension)
    density = np.zeros((30, 40), np.float32)
    density[10:20, 10:20] = 0.05  # people in the middle of the frame

    copy = write_blurred_copy(frame, rgb, density)

    assert copy.name.endswith(f"-frame-blurred.{extension}") and copy.name != frame.image.name
    with Image.open(io.BytesIO(stored_bytes(copy.name))) as stored:
        assert (stored.format, stored.size) == (image_format, (320, 240))
    assert 0 < copy.blurred_share < 0.5
    stored_rgb = load_rgb(stored_bytes(copy.name))
    if image_format != "WEBP":  # lossless: exactly the blurred pixels
        np.testing.assert_array_equal(stored_rgb, copy.rgb)
    assert Frame.objects.get(pk=frame.pk).image.name == frame.image.name  # not the frame's image yet
