"""Label-free adaptation jobs: a camera's default weights adapted to its own unlabeled frames (counting.adaptation
re-estimates their batch-norm statistics), run by the workers' `adapt_camera` task (queue `calibrate`) or
synchronously by the `adapt_camera` command; and the beat's automatic start for new cameras.

A job reads frames the camera stored (counted by the workers, image kept at full size), spread over the hours of
the day, or the images of a folder the command names; always adapts the camera's DEFAULT weights (adapting an
adapted or calibrated version would compound statistics, so re-adapting starts afresh); and, when the library
adapts, stores the version (`.pt` and `.onnx`), switches the camera to it and queues a recount of the camera's
stored frames. When the library finds the weights already fit the camera the job is `kept`; whatever fails, the job
is `failed` with a message. Either way the camera keeps its weights and nothing stored is touched.

torch is imported inside the functions only: the web process imports this module to queue jobs.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import ExtractHour
from django.utils import timezone

from counting.images import ImageError, decoded_size
from webapp.calibration.jobs import (
    Progress,
    export_version_onnx,
    finish_job,
    next_number,
    store_version,
    worker_counted_frames,
)
from webapp.calibration.models import AdaptationJob, RecountJob, WeightsVersion
from webapp.calibration.queueing import enqueue_adaptation, queue_recount
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.ingest.privacy import BLURRED_MARK

log = logging.getLogger(__name__)

# Of the newest stored frames, this many per frame used are spread over the hours: days of them for a camera
# uploading every few minutes, without reading the headers of its whole history.
CANDIDATES_PER_FRAME = 10
# The job's progress bar: reading the stored frames, then the library's three passes, then the ONNX export.
READING_SHARE = 0.1
ADAPTING_SHARE = 0.85


def stored_frames(camera: Camera) -> QuerySet[Frame]:
    """The camera's frames an adaptation may read: counted by the workers (not on its gateway, which keeps the
    image) with their image still in storage, not blurred (webapp.ingest.privacy: blurred people would skew the
    statistics). Whether an image is kept at full size shows only in its file (retention's downscale keeps the row's
    width and height), so the job checks that as it reads them."""
    return worker_counted_frames(camera).exclude(image="").exclude(image__contains=BLURRED_MARK)


def adaptation_rule():
    """counting.adaptation.AdaptationRule from CROWDSCOPE_ADAPTATION_RULE (its fields by name; empty: the library's
    defaults)."""
    from counting.adaptation import AdaptationRule

    return AdaptationRule(**settings.CROWDSCOPE_ADAPTATION_RULE)


def queue_adaptation(
    camera: Camera, *, created_by=None, automatic: bool = False, message: str = "waiting for a calibration worker"
) -> AdaptationJob:
    """Create a queued adaptation job of `camera` and send it to the workers once the transaction commits.

    Raises IntegrityError when one is already queued or running (a running one lost by its worker is failed first,
    so it no longer blocks)."""
    AdaptationJob.fail_lost(camera)
    with transaction.atomic():
        job = AdaptationJob.objects.create(camera=camera, created_by=created_by, automatic=automatic, message=message)
        transaction.on_commit(lambda: enqueue_adaptation(job))
    return job


def adapt_new_cameras() -> list[AdaptationJob]:
    """Queue an adaptation of every camera that has no weights version of its own (adapted or calibrated) and has
    never had an adaptation job (so one that failed or was kept is not tried again: an operator may), once it has
    CROWDSCOPE_ADAPTATION_MIN_FRAMES stored frames over CROWDSCOPE_ADAPTATION_MIN_HOURS distinct hours of its day.
    Returns the jobs queued; none when CROWDSCOPE_ADAPTATION_AUTO is off."""
    # Frames kept only downscaled (or deleted) after counting are never at full size: a job could only fail.
    if not settings.CROWDSCOPE_ADAPTATION_AUTO or settings.CROWDSCOPE_FRAME_RETENTION != "keep":
        return []
    new_cameras = Camera.objects.filter(
        ~Exists(WeightsVersion.objects.filter(camera=OuterRef("pk"))),
        ~Exists(AdaptationJob.objects.filter(camera=OuterRef("pk"))),
    ).select_related("site")
    queued = []
    for camera in new_cameras:
        frames = stored_frames(camera)
        count = frames.count()
        if count < settings.CROWDSCOPE_ADAPTATION_MIN_FRAMES:
            continue
        hours = (
            frames.annotate(hour=ExtractHour("captured_at", tzinfo=camera.zone))
            .order_by()
            .values("hour")
            .distinct()
            .count()
        )
        if hours < settings.CROWDSCOPE_ADAPTATION_MIN_HOURS:
            continue
        try:
            queued.append(
                queue_adaptation(
                    camera,
                    automatic=True,
                    message=f"waiting for a calibration worker (a new camera: {count} frames over {hours} hours of "
                    "its day)",
                )
            )
        except IntegrityError:  # a person started one since the query: theirs runs
            continue
    return queued


def run_adaptation(job_id: int, images: list[Path] | None = None) -> AdaptationJob:
    """Run the queued adaptation job `job_id` to its end (switched, kept or failed) and return it, on `images` (a
    folder's, in the command) or else on the camera's stored frames. A job that has already ended is returned
    untouched (a redelivered task); one left running by a lost worker is run again."""
    from counting.adaptation import AdaptationError

    job = AdaptationJob.objects.select_related("camera__site", "created_by").get(pk=job_id)
    if job.status not in AdaptationJob.ACTIVE:
        return job
    job.status, job.started_at, job.progress = AdaptationJob.Status.RUNNING, timezone.now(), 0.0
    job.message = "reading the camera's frames"
    job.save(update_fields=["status", "started_at", "progress", "message", "updated_at"])
    try:
        _adapt(job, images)
    except AdaptationError as error:
        finish_job(job, AdaptationJob.Status.FAILED, f"{error}; the camera keeps its weights")
    except Exception as error:  # any other failure must still end the job, with the camera's weights untouched
        log.exception("adaptation %s of camera %s failed", job.pk, job.camera_id)
        finish_job(
            job,
            AdaptationJob.Status.FAILED,
            f"adaptation failed ({type(error).__name__}: {error}); the camera keeps its weights",
        )
    return job


def _adapt(job: AdaptationJob, images: list[Path] | None) -> None:
    from counting.adaptation import adapt
    from counting.engine import resolve_precision

    camera, rule = job.camera, adaptation_rule()
    arch = camera.counting_model
    with tempfile.TemporaryDirectory(prefix="adaptation-") as scratch:
        if images is None:
            images, period = _read_stored_frames(job, rule, Path(scratch))
        else:
            period = None  # a folder's images carry no capture time we could trust
        adapted = Path(scratch) / "adapted.pt"
        outcome = adapt(
            arch,
            settings.COUNTING_WEIGHTS.get(arch) or None,
            images,
            adapted,
            rule,
            # What the workers count in, on their device: the counts before and after are theirs.
            precision=resolve_precision(settings.COUNTING_PRECISION, settings.COUNTING_DEVICE),
            device=settings.CROWDSCOPE_CALIBRATION_DEVICE,
            threads=settings.COUNTING_THREADS,
            progress=Progress(job, READING_SHARE, ADAPTING_SHARE),
        )
        job.frames, job.novelty = outcome.frames, outcome.novelty
        job.mean_count_before, job.mean_count_after = outcome.mean_count_before, outcome.mean_count_after
        if not outcome.adapted:
            finish_job(job, AdaptationJob.Status.KEPT, outcome.reason)
            return
        number = next_number(camera)
        Progress(job, READING_SHARE + ADAPTING_SHARE, 1 - READING_SHARE - ADAPTING_SHARE)(
            0.0, "exporting the adapted weights to ONNX for the gateway"
        )
        onnx = export_version_onnx(arch, adapted, Path(scratch) / "adapted.onnx", f"cam{camera.pk}-v{number}")
        version = WeightsVersion(
            camera=camera,
            number=number,
            kind=WeightsVersion.Kind.ADAPTED,
            arch=arch,
            base=None,
            folds=None,  # no held-out measurement: the held_out_* figures stay empty too
            adapted_frames=outcome.frames,
            frames_from=period[0] if period else None,
            frames_to=period[1] if period else None,
            mean_count_before=outcome.mean_count_before,
            mean_count_after=outcome.mean_count_after,
            rule=outcome.rule,
            novelty=outcome.novelty,
            strength=outcome.strength,
            created_by=job.created_by,
        )
        store_version(version, adapted, onnx, [])
    job.recount = _queue_recount(camera, job.created_by)
    recounting = (
        f"; recounting its stored frames from {timezone.localtime(job.recount.period_from, camera.zone):%Y-%m-%d}"
        if job.recount
        else ""
    )
    finish_job(
        job,
        AdaptationJob.Status.SWITCHED,
        f"{outcome.reason}; the camera now counts with v{number}{recounting}",
        version,
    )


def _read_stored_frames(job: AdaptationJob, rule, scratch: Path) -> tuple[list[Path], tuple[datetime, datetime]]:
    """Copy up to `rule.max_frames` of the camera's stored frames, spread over the hours of its day, into `scratch`
    (named `frame-ID.EXT`, so the library's messages name the frame); return their paths and the capture period of
    those used. A frame whose file is gone, unreadable or downscaled by retention is skipped: raises AdaptationError
    when fewer than `rule.min_frames` are left, saying how many were skipped."""
    from counting.adaptation import AdaptationError, spread_over_hours

    camera = job.camera
    candidates = list(stored_frames(camera).order_by("-captured_at")[: CANDIDATES_PER_FRAME * rule.max_frames])
    if not candidates:
        raise AdaptationError(
            f"camera {camera.pk} has no stored frames to adapt on (frames counted by the workers, image kept and not "
            "blurred: a camera that blurs heads adapts only on frames counted while blurring was off)"
        )
    # Hours of the camera's own day: its night is night wherever the server runs.
    local_times = [timezone.localtime(frame.captured_at, camera.zone) for frame in candidates]
    chosen = [candidates[index] for index in spread_over_hours(local_times, rule.max_frames)]
    progress = Progress(job, 0.0, READING_SHARE)
    images, times, skipped = [], [], 0
    for index, frame in enumerate(chosen, start=1):
        try:
            with frame.image.open("rb") as handle:
                data = handle.read()
            full_size = decoded_size(data) == (frame.width, frame.height)
        except (FileNotFoundError, ImageError):
            full_size = False
        if full_size:
            path = scratch / f"frame-{frame.pk}{Path(frame.image.name).suffix.lower()}"
            path.write_bytes(data)
            images.append(path)
            times.append(frame.captured_at)
        else:
            skipped += 1
        progress(index / len(chosen), f"read {index} of {len(chosen)} frames")
    if len(images) < rule.min_frames:
        raise AdaptationError(
            f"{len(images)} of camera {camera.pk}'s stored frames can be used ({skipped} skipped: image missing, "
            f"unreadable or not kept at full size); adaptation needs at least {rule.min_frames}"
        )
    return images, (min(times), max(times))


def _queue_recount(camera: Camera, created_by) -> RecountJob | None:
    """Queue a recount of every frame the camera's workers counted, from the oldest to now, with the weights it uses
    now; None when there is none to recount."""
    oldest = worker_counted_frames(camera).order_by("captured_at").values_list("captured_at", flat=True).first()
    if oldest is None:
        return None
    # A gateway's clock may run ahead of ours by the skew uploads are allowed: those frames are the camera's too.
    until = timezone.now() + timedelta(seconds=settings.CROWDSCOPE_MAX_CLOCK_SKEW_SECONDS + 1)
    return queue_recount(
        camera, oldest, until, created_by, "waiting for a worker (recounting with the adapted weights)"
    )
