"""Every Celery task the workers run, registered under the names of `webapp.queues` (the web side sends them by
name); each is a thin wrapper over the webapp module that does the work.

- Counting (the queue of the camera's model, `count.<arch>`): `count_frame` and `count_frame_in_batch` load a
  frame, count it with its camera's weights, store it blurred where the camera asks, store the result and apply
  frame retention.
- Reports (the `reports` queue, where the LLM is loaded): `generate_report`, `answer_question`, `send_report_email`.
- Calibration (the `calibrate` queue, minutes each): `calibrate_camera`, `adapt_camera`, and `recount_period`, which
  recounts a camera's period with the weights it uses now.
- Notifications (the default queue): `deliver_notification`, retried with back-off.
- Run by the beat (CELERY_BEAT_SCHEDULE, on the default queue): `requeue_stale_frames`, `expire_by_age`,
  `send_due_reports`, `adapt_new_cameras`, `sweep_notifications`, `check_unusual_levels`, `warm_site_analytics`,
  `delete_replaced_uploads`.

The report and calibration jobs are imported inside their tasks, so a counting worker never loads the LLM code.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from counting.engine import FrameBatcher
from counting.images import ImageError, load_rgb
from counting.models import WeightsError
from webapp.alerts.unusual import check_last_hour
from webapp.calibration.models import TIME_LIMIT as CALIBRATION_TIME_LIMIT
from webapp.dashboard.site_figures import WARM_WITHIN, warm_site_figures
from webapp.ingest import retention
from webapp.ingest.models import Frame
from webapp.ingest.privacy import sweep_replaced_uploads, write_blurred_copy
from webapp.ingest.queueing import enqueue_count
from webapp.ingest.results import Counted, apply_retention, store_result
from webapp.ingest.storage import StorageUnavailable, read_media_file
from webapp.notifications.dispatch import RETRY_DELAYS, attempt, notify_alert_changes, sweep
from webapp.queues import (
    ADAPT_CAMERA,
    ADAPT_NEW_CAMERAS,
    ANSWER_QUESTION,
    CALIBRATE_CAMERA,
    CHECK_UNUSUAL_LEVELS,
    COUNT_FRAME,
    COUNT_FRAME_IN_BATCH,
    DELETE_REPLACED_UPLOADS,
    DELIVER_NOTIFICATION,
    EXPIRE_BY_AGE,
    GENERATE_REPORT,
    RECOUNT_PERIOD,
    REQUEUE_STALE_FRAMES,
    SEND_DUE_REPORTS,
    SEND_REPORT_EMAIL,
    SWEEP_NOTIFICATIONS,
    WARM_SITE_ANALYTICS,
)
from workers.celery_app import app
from workers.engines import camera_engine

log = logging.getLogger(__name__)

# Worth another try later: the database or the broker was briefly away.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


STORAGE_RETRIES = 20  # every 15 minutes at most: about four and a half hours


class CountFrameTask(Task):
    # None: each frame is counted by itself.
    batcher: FrameBatcher | None = None

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """Out of retries, or an error nobody expected: the frame says why, and stays failed."""
        frame = Frame.objects.filter(pk=args[0]).first()
        if frame is not None:
            frame.mark_failed(f"counting failed: {type(exc).__name__}: {exc}")

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        """A retry later is no interruption: the frame waits in the queue again."""
        frame = Frame.objects.filter(pk=args[0]).first()
        if frame is not None:
            frame.mark_waiting()


class BatchCountFrameTask(CountFrameTask):
    """Counts the frame in one forward pass with those that the worker's other threads count meanwhile. Its worker runs
    a pool of threads (`--pool threads`), at least as many as a batch holds (prefetching as many messages); with
    twice as many, one batch is stored while the next is counted."""

    batcher = FrameBatcher(settings.CROWDSCOPE_COUNT_BATCH_SIZE, settings.CROWDSCOPE_COUNT_BATCH_WAIT_MS / 1000)


COUNT_FRAME_OPTIONS = {
    "bind": True,
    # Acknowledged when done, and handed to another worker if this one dies mid-task.
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
}


def _count_frame(self: CountFrameTask, frame_id: int) -> float | None:
    """Count the frame and store its result; the count, or None when nothing was stored (the frame is gone, done
    already, failed for good, or its result was stored by another delivery).

    A frame whose worker died too often, or whose image or weights cannot be read, is marked failed; unreadable media
    storage retries later (up to STORAGE_RETRIES), and a database or broker hiccup retries with back-off
    (`COUNT_FRAME_OPTIONS`)."""
    frame = Frame.objects.select_related("camera__active_weights").filter(pk=frame_id).first()
    if frame is None:
        log.warning("frame %s no longer exists", frame_id)
        return None
    if frame.status == Frame.Status.DONE:
        return None  # a redelivery of a task that already finished
    interruptions = frame.start_counting()
    if interruptions > settings.CROWDSCOPE_MAX_INTERRUPTIONS:
        frame.mark_failed(
            f"counting was interrupted {interruptions} times (its worker died each time): not tried again"
        )
        return None
    try:
        rgb, counted = count_stored_frame(frame, self.batcher)
        # Counted as uploaded; stored blurred, so the count and heatmap are the unblurred frame's.
        blurred = write_blurred_copy(frame, rgb, counted.density) if frame.camera.blur_heads else None
        result = store_result(frame, counted, blurred)
    except (WeightsError, ImageError, FileNotFoundError) as error:
        frame.mark_failed(str(error))
        return None
    except StorageUnavailable as error:
        # Full, or a bucket that refuses or does not answer: the frame waits in the queue, nothing is lost.
        log.warning("frame %s: %s; trying again later", frame.pk, error)
        later = min(settings.CROWDSCOPE_STORAGE_RETRY_SECONDS * 2**self.request.retries, 900)
        raise self.retry(exc=error, countdown=later, max_retries=STORAGE_RETRIES) from error
    if result is None:
        return None
    log.info("frame %s of camera %s counted: %.1f people", frame.pk, frame.camera_id, result.count)
    if blurred is not None:
        log.info(
            "frame %s stored with %.0f%% of it blurred (%.0f ms)", frame.pk, 100 * blurred.blurred_share, blurred.ms
        )
        rgb = blurred.rgb  # what retention may keep a small copy of
    apply_retention(frame, rgb, settings.CROWDSCOPE_FRAME_RETENTION, settings.CROWDSCOPE_RETAINED_FRAME_MAX_SIDE)
    return result.count


count_frame = app.task(name=COUNT_FRAME, base=CountFrameTask, **COUNT_FRAME_OPTIONS)(_count_frame)
# The same work and the same failures and retries, per frame, for the models of CROWDSCOPE_BATCHED_MODELS.
count_frame_in_batch = app.task(name=COUNT_FRAME_IN_BATCH, base=BatchCountFrameTask, **COUNT_FRAME_OPTIONS)(
    _count_frame
)


def count_stored_frame(frame: Frame, batcher: FrameBatcher | None = None) -> tuple[np.ndarray, Counted]:
    """Decode the frame's stored image and count it with the weights its camera uses now (calibrated or default), by
    itself or in a batch of `batcher`'s.

    Raises WeightsError, ImageError or FileNotFoundError (the image or the calibrated weights are gone), or
    StorageUnavailable (the media storage cannot be read now)."""
    engine, version = camera_engine(frame.camera)
    rgb = load_rgb(read_media_file(frame.image))
    counted = engine.count(rgb) if batcher is None else batcher.count(engine, rgb)
    return rgb, Counted.of_density(frame.camera, counted.density, counted.count, engine.arch, version, counted.ms)


@app.task(name=REQUEUE_STALE_FRAMES)
def requeue_stale_frames() -> int:
    """Re-send frames the broker never took, frames waiting so long that their task must have been lost (Redis
    restarted without persistence), and frames processing for longer than any count takes, whose worker died (the
    broker would hand their task out again only after its visibility timeout, an hour). A frame merely waiting in a
    backlog is not re-sent, so no work is done twice; if it ever is, the result is stored once all the same."""
    now = timezone.now()
    stale = (
        Frame.objects.filter(status__in=[Frame.Status.QUEUED, Frame.Status.PROCESSING], result__isnull=True)
        .filter(
            Q(enqueued_at__isnull=True)
            | Q(enqueued_at__lt=now - timedelta(seconds=settings.CROWDSCOPE_REQUEUE_AFTER_SECONDS))
            | Q(
                status=Frame.Status.PROCESSING,
                processing_since__lt=now - timedelta(seconds=settings.CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS),
                enqueued_at__lt=now - timedelta(seconds=settings.CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS),
            )
        )
        .select_related("camera")[:500]
    )
    frames = list(stale)
    for frame in frames:
        Frame.objects.filter(pk=frame.pk).update(enqueued_at=now)
        enqueue_count(frame)
    if frames:
        log.info("re-sent %d stale frames", len(frames))
    return len(frames)


@app.task(name=GENERATE_REPORT, acks_late=True, reject_on_worker_lost=True)
def generate_report(report_id: int) -> str:
    """Write a pending report (webapp.reports.pending.create_report made it)."""
    # Imported here, not at the top: counting workers never need transformers and its seconds of import time.
    from webapp.reports.generation import generate, shared_llm
    from webapp.reports.models import Report

    report = Report.objects.get(pk=report_id)
    if report.status == Report.Status.DONE:
        return report.status
    return generate(report, shared_llm()).status


@app.task(name=ANSWER_QUESTION, acks_late=True, reject_on_worker_lost=True)
def answer_question(question_id: int) -> str:
    """Answer a report's follow-up question with the LLM; the answer (an answered question is not asked again)."""
    from webapp.reports.generation import answer, shared_llm
    from webapp.reports.models import Question

    question = Question.objects.select_related("report").get(pk=question_id)
    if question.answer:
        return question.answer
    return answer(question, shared_llm()).answer


# Seconds before each retry of a failed email: 1, 2, 4, 8 and 15 minutes.
EMAIL_RETRY_DELAYS = (60, 120, 240, 480, 900)
# Shorter than webapp.reports.delivery.SENDING_LEASE (not imported here: counting workers never load the LLM code).
ATTEMPT_TIME_LIMIT = timedelta(minutes=15)


@app.task(name=EXPIRE_BY_AGE)
def expire_by_age() -> list[str]:
    """Run by the beat daily: retention by age (webapp.ingest.retention); what each step freed."""
    return [str(freed) for freed in retention.expire_by_age(timezone.now())]


@app.task(name=DELETE_REPLACED_UPLOADS)
def delete_replaced_uploads() -> int:
    """Every five minutes (the beat): unblurred uploads whose worker died before deleting them
    (webapp.ingest.privacy); how many were deleted."""
    return sweep_replaced_uploads(timezone.now())


@app.task(name=SEND_DUE_REPORTS)
def send_due_reports() -> int:
    """Run by the beat every minute: send the daily report emails that fell due (subscriptions live in the
    database, so a change there applies at the next minute) and those whose attempt was lost."""
    from webapp.reports.delivery import due_deliveries

    deliveries = due_deliveries(timezone.now())
    for delivery in deliveries:
        send_report_email.delay(delivery.pk)
    return len(deliveries)


@app.task(
    name=SEND_REPORT_EMAIL,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=len(EMAIL_RETRY_DELAYS),
    # Shorter than the delivery's claim, so an attempt never runs on after another may have taken over.
    soft_time_limit=int(ATTEMPT_TIME_LIMIT.total_seconds()),
)
def send_report_email(self, delivery_id: int) -> str:
    """Send one daily report email (webapp.reports.delivery.deliver, which writes the day's report or reuses it);
    what happened, in words. A delivery that went out or that another attempt holds is left alone; an error is
    recorded on the delivery and retried after EMAIL_RETRY_DELAYS, final after the last retry or at once when the
    delivery cannot be made at all (CannotDeliver)."""
    from webapp.reports.delivery import CannotDeliver, SentUnrecorded, claim, deliver, record_failure
    from webapp.reports.generation import shared_llm

    delivery = claim(delivery_id, timezone.now())
    if delivery is None:
        return "sent already, or another attempt holds it"
    try:
        deliver(delivery, shared_llm)
    except SentUnrecorded:
        log.exception("delivery %s", delivery_id)
        return "sent, not recorded"
    except CannotDeliver as error:
        record_failure(delivery, error, final=True)
        return str(error)
    except Exception as error:
        final = self.request.retries >= self.max_retries
        record_failure(delivery, error, final)
        if final:
            raise
        raise self.retry(exc=error, countdown=EMAIL_RETRY_DELAYS[self.request.retries]) from error
    return "sent"


@app.task(
    name=CALIBRATE_CAMERA,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=int(CALIBRATION_TIME_LIMIT.total_seconds()),
)
def calibrate_camera(job_id: int) -> str:
    """Run a calibration job (webapp.calibration.jobs); on the `calibrate` queue, so counting never waits for it."""
    from webapp.calibration.jobs import run_calibration

    return run_calibration(job_id).status


@app.task(
    name=ADAPT_CAMERA,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=int(CALIBRATION_TIME_LIMIT.total_seconds()),
)
def adapt_camera(job_id: int) -> str:
    """Run an adaptation job (webapp.calibration.adaptation) on the camera's stored frames; on the `calibrate`
    queue, so counting never waits for it."""
    from webapp.calibration.adaptation import run_adaptation

    return run_adaptation(job_id).status


@app.task(name=ADAPT_NEW_CAMERAS)
def adapt_new_cameras() -> int:
    """Every five minutes (the beat): queue an adaptation of each new camera with enough frames; how many."""
    from webapp.calibration import adaptation

    return len(adaptation.adapt_new_cameras())


@app.task(name=RECOUNT_PERIOD, acks_late=True, reject_on_worker_lost=True)
def recount_period(job_id: int) -> str:
    """Recount a camera's frames of a period with the weights it uses now, frame by frame (see run_recount)."""
    from webapp.calibration.jobs import run_recount

    return run_recount(job_id, count_stored_frame).status


@app.task(
    name=DELIVER_NOTIFICATION, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=len(RETRY_DELAYS)
)
def deliver_notification(self, notification_id: int) -> str:
    """An alert's event to a webhook, email addresses or an MQTT broker (webapp.notifications.dispatch), retried with
    back-off (RETRY_DELAYS) and failed for good after the last; each attempt is in the notification's row."""
    final = self.request.retries >= self.max_retries
    try:
        notification = attempt(notification_id, final)
    except Exception as error:
        if final:
            return f"failed: {error}"
        raise self.retry(exc=error, countdown=RETRY_DELAYS[self.request.retries]) from error
    return "delivered already" if notification is None else "delivered"


@app.task(name=SWEEP_NOTIFICATIONS)
def sweep_notifications() -> int:
    """Every minute (the beat): escalations due, and notifications whose task was lost."""
    return len(sweep(timezone.now()))


@app.task(name=CHECK_UNUSUAL_LEVELS)
def check_unusual_levels() -> int:
    """Every hour (the beat): unusual-level alerts for the hour just ended, notified like any other."""
    with transaction.atomic():
        changes = check_last_hour(timezone.now())
        notify_alert_changes(changes)
    return len(changes.raised)


@app.task(name=WARM_SITE_ANALYTICS)
def warm_site_analytics() -> int:
    """Every quarter hour (the beat): the site pages' figures of each site whose local hour has just begun, computed
    into the cache the web processes read; how many sites."""
    return len(warm_site_figures(timezone.now(), begun_within=WARM_WITHIN))
