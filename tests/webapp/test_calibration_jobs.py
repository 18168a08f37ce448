"""Calibration end to end with the real model on small real frames: the API starts the job, the Celery task (eager)
runs the guarded fine-tune, the camera switches to a new weights version, and its frames are counted (and recounted)
with it; a job that cannot run fails with a message and the camera keeps its weights; the command does it from a
folder."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from counting.engine import CountingEngine
from counting.images import load_rgb
from tests.factories import ago, queued_frame
from tests.stored_media import stored_copy
from webapp.calibration.models import CalibrationJob, MarkedFrame, RecountJob, WeightsVersion
from webapp.ingest.models import Frame
from workers.tasks import count_frame

pytestmark = pytest.mark.django_db

FRAMES = 6
SIDE = (256, 192)  # Part B frames at a quarter of their size: quick to tune on two cores


@pytest.fixture(scope="module")
def folder(shanghaitech, tmp_path_factory) -> Path:
    """Six real frames, each beside NAME.json. Every head is marked twice (a second point 2 px away): the default
    weights count about half of that, so a short fine-tune lowers the held-out error and the guard switches."""
    root, out = shanghaitech / "part_B/test", tmp_path_factory.mktemp("marked")
    for number in range(1, FRAMES + 1):
        with Image.open(root / f"images/IMG_{number}.jpg") as image:
            scale = SIDE[0] / image.width
            image.convert("RGB").resize(SIDE).save(out / f"frame-{number}.jpg", quality=90)
        heads = scipy.io.loadmat(root / f"ground-truth/GT_IMG_{number}.mat")["image_info"][0, 0][0, 0][0] * scale
        points = np.concatenate([heads, np.clip(heads + 2, 0, SIDE[1] - 1)])
        (out / f"frame-{number}.json").write_text(json.dumps(points.tolist()))
    return out


@pytest.fixture
def tiny_tuning(settings):
    """Two folds, two epochs of 128-pixel crops: seconds, not minutes."""
    settings.CROWDSCOPE_CALIBRATION_EPOCHS = 2
    settings.CROWDSCOPE_CALIBRATION_OPTIONS = {"crop": (128, 128), "folds": 2, "lr": 3e-4, "warmup_epochs": 0}
    return settings


@pytest.fixture
def eager(settings):
    """Tasks sent by the views run in this process, as with CROWDSCOPE_TASKS_IN_PROCESS=1.

    Set through Django's settings, which Celery reads live: assigning ``app.conf`` directly
    would leave an override behind that shadows every later test's settings.
    """
    settings.CELERY_TASK_ALWAYS_EAGER = True


def mark_folder(camera, folder: Path, points=None) -> list[MarkedFrame]:
    marked = []
    for image in sorted(folder.glob("*.jpg")):
        data = image.read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
        heads = json.loads(image.with_suffix(".json").read_text()) if points is None else points
        frame = MarkedFrame(camera=camera, width=width, height=height, points=heads)
        frame.image.save(image.name, ContentFile(data), save=False)
        frame.save()
        marked.append(frame)
    return marked


def test_a_calibration_switches_the_camera_and_its_frames_name_the_version(
    operator, camera, folder, tiny_tuning, eager, django_capture_on_commit_callbacks
):
    mark_folder(camera, folder)
    earlier = queued_frame(camera, (folder / "frame-1.jpg").read_bytes(), captured_at=ago(hours=2))
    count_frame.apply(args=[earlier.pk]).get()
    default_count = Frame.objects.get(pk=earlier.pk).result.count

    with django_capture_on_commit_callbacks(execute=True):
        started = operator.post(f"/api/v1/cameras/{camera.pk}/calibrations/")
    assert started.status_code == 202
    job = operator.get(started.json()["status_url"]).json()

    assert job["status"] == "switched" and job["switched"] and job["version"] == 1, job["message"]
    assert job["progress"] == 1.0 and job["frames"] == FRAMES
    assert job["held_out_mae_after"] < job["held_out_mae_before"]
    version = WeightsVersion.objects.get(camera=camera)
    camera.refresh_from_db()
    assert camera.active_weights == version and version.base is None and version.held_out_frames == FRAMES
    assert version.weights.name == f"calibration/{camera.pk}/weights/v1.pt"
    assert version.onnx.name == f"calibration/{camera.pk}/weights/v1.onnx" and version.onnx.size > 0
    assert version.frames_used.count() == FRAMES

    # A frame uploaded now is counted by the tuned weights, and its result names them.
    frame = queued_frame(camera, (folder / "frame-2.jpg").read_bytes())
    count_frame.apply(args=[frame.pk]).get()
    result = Frame.objects.get(pk=frame.pk).result
    assert result.model_version.startswith(f"cam{camera.pk}-v1 v1.pt@")
    tuned = CountingEngine("csrnet-lite", stored_copy(version.weights)).count(load_rgb(folder / "frame-2.jpg")).count
    assert result.count == pytest.approx(tuned, rel=1e-4)

    # A recount of the earlier period replaces the default weights' result with the tuned one.
    with django_capture_on_commit_callbacks(execute=True):
        recount = operator.post(
            f"/api/v1/cameras/{camera.pk}/recounts/",
            {"from": ago(hours=3).isoformat(), "to": ago(hours=1).isoformat()},
            content_type="application/json",
        )
    state = operator.get(recount.json()["status_url"]).json()
    assert state["status"] == "done" and state["frames"] == 1, state["message"]
    recounted = Frame.objects.get(pk=earlier.pk).result
    assert recounted.model_version.startswith(f"cam{camera.pk}-v1 ") and recounted.count != default_count


def test_a_job_that_cannot_run_fails_and_the_camera_keeps_its_weights(camera, folder, tiny_tuning):
    kept = WeightsVersion(
        camera=camera, number=1, arch="csrnet-lite", held_out_mae_before=1, held_out_mae_after=0.5, held_out_frames=6
    )
    kept.weights.save("v1.pt", ContentFile(b"not a checkpoint"), save=False)
    kept.save()
    camera.active_weights = kept
    camera.save()
    from workers.tasks import calibrate_camera

    mark_folder(camera, folder, points=[])
    no_heads = CalibrationJob.objects.create(camera=camera)
    calibrate_camera.apply(args=[no_heads.pk]).get()
    no_heads.refresh_from_db()
    assert no_heads.status == "failed" and "no heads marked" in no_heads.message
    assert "keeps its weights" in no_heads.message

    MarkedFrame.objects.filter(camera=camera).update(points=[[5.0, 5.0]])
    broken_base = CalibrationJob.objects.create(camera=camera)
    calibrate_camera.apply(args=[broken_base.pk]).get()
    broken_base.refresh_from_db()
    assert broken_base.status == "failed" and "keeps its weights" in broken_base.message
    camera.refresh_from_db()
    assert camera.active_weights == kept and WeightsVersion.objects.count() == 1
    assert MarkedFrame.objects.filter(camera=camera).count() == FRAMES


def test_the_command_imports_a_folder_and_keeps_weights_that_do_not_help(camera, folder, settings, capsys):
    # A learning rate of zero and no count-scale fit leave the tuned copy equal to the current weights: not lower, so
    # the guard keeps them.
    settings.CROWDSCOPE_CALIBRATION_EPOCHS = 1
    settings.CROWDSCOPE_CALIBRATION_OPTIONS = {
        "crop": (128, 128),
        "folds": 2,
        "lr": 0.0,
        "warmup_epochs": 0,
        "fit_count_scale": False,
    }

    call_command("calibrate_camera", str(camera.pk), "--frames", str(folder), "--json")

    report = json.loads(capsys.readouterr().out)
    assert report["camera"] == camera.pk and report["frames"] == FRAMES
    assert report["switched"] is False and report["version"] is None
    assert report["held_out_mae_after"] == pytest.approx(report["held_out_mae_before"])
    assert MarkedFrame.objects.filter(camera=camera, marked_by=None).count() == FRAMES
    camera.refresh_from_db()
    assert camera.active_weights is None and not WeightsVersion.objects.exists()
    assert CalibrationJob.objects.get().status == "kept"


def test_the_command_refuses_a_bad_folder_and_stores_nothing(camera, folder, tmp_path):
    for image in sorted(folder.glob("*.jpg"))[:3]:
        (tmp_path / image.name).write_bytes(image.read_bytes())
        (tmp_path / image.with_suffix(".json").name).write_text("[[9999, 1]]")

    with pytest.raises(CommandError, match="outside"):
        call_command("calibrate_camera", str(camera.pk), "--frames", str(tmp_path))
    with pytest.raises(CommandError, match="no camera 9999"):
        call_command("calibrate_camera", "9999", "--frames", str(folder))
    assert not MarkedFrame.objects.exists() and not CalibrationJob.objects.exists()
    assert not RecountJob.objects.exists()
