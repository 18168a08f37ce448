"""Calibration and recount jobs: run by the workers' tasks (workers.tasks, queue `calibrate`) or synchronously by the
`calibrate_camera` command. torch is imported inside the functions, never by the web process. What every job that
makes a weights version shares (progress, finishing, numbering, the ONNX export, storing and switching) is here too;
adaptation jobs are in webapp.calibration.adaptation.

A calibration fine-tunes the camera's current weights (its active version, else the default) on all its marked frames
under counting.training.calibration's k-fold guard: the camera switches only when the held-out error drops. Whatever
fails, the job says why and the camera keeps its weights; marked frames are only read.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from counting.images import ImageError
from webapp.audit_records import log_queryset_update
from webapp.calibration.models import (
    MIN_MARKED_FRAMES,
    AdaptationJob,
    CalibrationJob,
    MarkedFrame,
    RecountJob,
    TrackedJob,
    WeightsVersion,
)
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.ingest.privacy import is_blurred
from webapp.ingest.results import Counted, replace_result
from webapp.ingest.storage import local_copy, read_media_file

log = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 1.0  # the job row is written at most this often: progress is called every training step
TRAINING_SHARE = 0.95  # of the progress bar; the ONNX export takes the rest


class Progress:
    """Writes `progress` (scaled into [start, start + span]) and `message` to a job row, at most once a second
    (and always at the end)."""

    def __init__(self, job: TrackedJob, start: float = 0.0, span: float = 1.0) -> None:
        self.model, self.pk, self.start, self.span = type(job), job.pk, start, span
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = now
        progress = min(1.0, max(0.0, self.start + self.span * fraction))
        self.model.objects.filter(pk=self.pk).update(progress=progress, message=message, updated_at=timezone.now())


def calibration_config():
    """counting.training.calibration.CalibrationConfig from the settings (epochs, device, threads, further options)."""
    from counting.engine import resolve_precision
    from counting.training.calibration import CalibrationConfig

    options = {
        "device": settings.CROWDSCOPE_CALIBRATION_DEVICE,
        "threads": settings.COUNTING_THREADS,
        # What the workers count in, on their device: the calibration's figures and count scale are theirs.
        "precision": resolve_precision(settings.COUNTING_PRECISION, settings.COUNTING_DEVICE),
    }
    if settings.CROWDSCOPE_CALIBRATION_EPOCHS:
        options["epochs"] = settings.CROWDSCOPE_CALIBRATION_EPOCHS
    return CalibrationConfig(**(options | settings.CROWDSCOPE_CALIBRATION_OPTIONS))


def run_calibration(job_id: int) -> CalibrationJob:
    """Run the queued calibration job `job_id` to its end (switched, kept or failed) and return it. A job that has
    already ended is returned untouched (a redelivered task); one left running by a lost worker is run again."""
    from counting.training.calibration import CalibrationError

    job = CalibrationJob.objects.select_related("camera__active_weights", "created_by").get(pk=job_id)
    if job.status not in CalibrationJob.ACTIVE:
        return job
    job.status, job.started_at, job.progress = CalibrationJob.Status.RUNNING, timezone.now(), 0.0
    job.message = "loading the marked frames"
    job.save(update_fields=["status", "started_at", "progress", "message", "updated_at"])
    try:
        _calibrate(job)
    except CalibrationError as error:
        finish_job(job, CalibrationJob.Status.FAILED, f"{error}; the camera keeps its weights")
    except Exception as error:  # any other failure must still end the job, with the camera's weights untouched
        log.exception("calibration %s of camera %s failed", job.pk, job.camera_id)
        finish_job(
            job,
            CalibrationJob.Status.FAILED,
            f"calibration failed ({type(error).__name__}: {error}); the camera keeps its weights",
        )
    return job


def finish_job(
    job: CalibrationJob | AdaptationJob, status: str, message: str, version: WeightsVersion | None = None
) -> None:
    """End `job` with `status` and `message` (and the version it made), saving every field the job has set."""
    job.status, job.message, job.result_version, job.finished_at = status, message, version, timezone.now()
    if status != job.Status.FAILED:
        job.progress = 1.0
    job.save()


def _samples(marked: list[MarkedFrame], scratch: Path) -> list:
    """The marked frames as the library's samples, their images copied from the media storage into `scratch`."""
    from counting.training.calibration import CalibrationError
    from counting.training.datasets import AnnotatedImage

    samples = []
    for frame in marked:
        try:
            data = read_media_file(frame.image)
        except FileNotFoundError as error:
            raise CalibrationError(
                f"marked frame {frame.pk}'s image is missing from storage ({frame.image.name})"
            ) from error
        path = scratch / f"marked-{frame.pk}{Path(frame.image.name).suffix.lower()}"
        path.write_bytes(data)
        samples.append(AnnotatedImage(path, np.asarray(frame.points, dtype=np.float64).reshape(-1, 2), "adaptive"))
    return samples


def _calibrate(job: CalibrationJob) -> None:
    from counting.training.calibration import CalibrationError, calibrate

    camera = job.camera
    marked = list(MarkedFrame.objects.filter(camera=camera).order_by("pk"))
    if len(marked) < MIN_MARKED_FRAMES:
        raise CalibrationError(
            f"camera {camera.pk} has {len(marked)} marked frames; calibration needs at least {MIN_MARKED_FRAMES}"
        )
    current = camera.active_weights
    arch = current.arch if current else camera.counting_model
    base = (
        local_copy(current.weights, settings.CROWDSCOPE_WEIGHTS_CACHE_DIR)
        if current
        else settings.COUNTING_WEIGHTS.get(arch) or None
    )
    with tempfile.TemporaryDirectory(prefix="calibration-") as scratch:
        tuned = Path(scratch) / "tuned.pt"
        outcome = calibrate(
            arch,
            base,
            _samples(marked, Path(scratch)),
            tuned,
            calibration_config(),
            progress=Progress(job, 0.0, TRAINING_SHARE),
        )
        job.frames = outcome.frames
        job.held_out_mae_before, job.held_out_mae_after = outcome.held_out_mae_before, outcome.held_out_mae_after
        if not outcome.switched:
            finish_job(job, CalibrationJob.Status.KEPT, outcome.reason)
            return
        number = next_number(camera)
        Progress(job, TRAINING_SHARE, 1 - TRAINING_SHARE)(0.0, "exporting the tuned weights to ONNX for the gateway")
        onnx = export_version_onnx(arch, tuned, Path(scratch) / "tuned.onnx", f"cam{camera.pk}-v{number}")
        version = WeightsVersion(
            camera=camera,
            number=number,
            arch=arch,
            base=current,
            held_out_mae_before=outcome.held_out_mae_before,
            held_out_mae_after=outcome.held_out_mae_after,
            held_out_frames=outcome.frames,
            folds=outcome.folds,
            created_by=job.created_by,
        )
        store_version(version, tuned, onnx, marked)
    finish_job(job, CalibrationJob.Status.SWITCHED, f"{outcome.reason}; the camera now counts with v{number}", version)


def next_number(camera: Camera) -> int:
    """The number the camera's next weights version gets, whatever its kind: one more than its highest."""
    return (WeightsVersion.objects.filter(camera=camera).aggregate(top=Max("number"))["top"] or 0) + 1


def export_version_onnx(arch: str, weights: Path, out: Path, label: str) -> Path:
    """Export the checkpoint `weights` to ONNX at `out` for the camera's gateway, its metadata naming `label`."""
    from counting.models import load_model
    from counting.onnx_export import export_onnx
    from counting.versions import weights_version

    model, arch, _ = load_model(arch, weights)
    return export_onnx(model, out, {"arch": arch, "weights": f"{label} {weights_version(weights)}"})


def store_version(version: WeightsVersion, tuned: Path, onnx: Path, marked: list[MarkedFrame]) -> None:
    """Save the version's files as media and the row (with the marked frames it used: none for an adapted one), and
    make it the camera's active weights, all or nothing. The switch goes into the audit log, made by the job (no
    person: the guard decided it), saying who started the job."""
    with tuned.open("rb") as weights_file, onnx.open("rb") as onnx_file:
        version.weights.save(f"v{version.number}.pt", File(weights_file), save=False)
        version.onnx.save(f"v{version.number}.onnx", File(onnx_file), save=False)
    try:
        with transaction.atomic():
            version.save()
            version.frames_used.set(marked)
            before = Camera.objects.get(pk=version.camera_id)
            Camera.objects.filter(pk=version.camera_id).update(active_weights=version)
            after = copy.copy(before)
            after.active_weights = version
            log_queryset_update(
                before,
                after,
                ["active_weights"],
                switched_by=f"{version.get_kind_display()} weights job",
                job_started_by=version.created_by.get_username() if version.created_by else None,
            )
    except Exception:
        version.weights.delete(save=False)
        version.onnx.delete(save=False)
        raise
    version.camera.active_weights = version


def worker_counted_frames(camera: Camera) -> QuerySet[Frame]:
    """The camera's frames the server's workers counted (not its gateway): the ones a recount, a suggestion to mark
    or an adaptation may read the image of, while it is kept."""
    return Frame.objects.filter(camera=camera, status=Frame.Status.DONE, result__isnull=False, counted_on_gateway=False)


def run_recount(job_id: int, count: Callable[[Frame], tuple[np.ndarray, Counted]]) -> RecountJob:
    """Recount the counted frames of the job's camera captured in its period, oldest first, with `count` (the
    worker's: the camera's weights in use now), replacing each result in its own transaction; so a failure midway
    leaves every frame with either its old result or its new one. Frames whose image is not kept at full size
    (retention) or is kept blurred (webapp.ingest.privacy: counting blurred people would undercount them), or that
    were counted on the gateway, are skipped, keeping their result, and the message says how many."""
    job = RecountJob.objects.select_related("camera__active_weights").get(pk=job_id)
    if job.status not in (RecountJob.Status.QUEUED, RecountJob.Status.RUNNING):
        return job
    RecountJob.objects.filter(pk=job.pk).update(status=RecountJob.Status.RUNNING, started_at=timezone.now())
    camera = job.camera
    weights = camera.active_weights.label if camera.active_weights else "the default weights"
    frames = list(
        worker_counted_frames(camera)
        .filter(captured_at__gte=job.period_from, captured_at__lt=job.period_to)
        .order_by("captured_at")
    )
    progress = Progress(job)
    done = skipped = 0
    try:
        for index, frame in enumerate(frames):
            frame.camera = camera  # every frame with the same weights, chosen when the job started
            if not frame.image or is_blurred(frame.image):
                skipped += 1
                continue
            try:
                rgb, counted = count(frame)
            except (ImageError, FileNotFoundError):
                skipped += 1
                continue
            if rgb.shape[:2] != (frame.height, frame.width):
                skipped += 1  # downscaled by retention: a count at another scale is not comparable
                continue
            replace_result(frame, counted)
            done += 1
            RecountJob.objects.filter(pk=job.pk).update(frames=done)
            progress((index + 1) / len(frames), f"recounted {done} of {len(frames)} frames with {weights}")
    except Exception as error:  # the frames done so far keep their new results
        log.exception("recount %s of camera %s failed", job.pk, camera.pk)
        message = (
            f"recount failed after {done} of {len(frames)} frames ({type(error).__name__}: {error}); those have "
            "their new count, the others keep their old one"
        )
        ended = {"status": RecountJob.Status.FAILED}
    else:
        message = f"recounted {done} frames with {weights}" + (
            f"; {skipped} skipped (image not kept at full size, or kept with heads blurred)" if skipped else ""
        )
        ended = {"status": RecountJob.Status.DONE, "progress": 1.0}
    RecountJob.objects.filter(pk=job.pk).update(message=message, frames=done, finished_at=timezone.now(), **ended)
    job.refresh_from_db()
    return job
