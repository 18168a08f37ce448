"""Hand calibration, adaptation and recount jobs to the workers' `calibrate` queue (routed in settings), the way
webapp.ingest.queueing hands frames to the counting queues."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from webapp.calibration.models import AdaptationJob, CalibrationJob, RecountJob
from webapp.celery_app import enqueue
from webapp.queues import ADAPT_CAMERA, CALIBRATE_CAMERA, RECOUNT_PERIOD

log = logging.getLogger(__name__)


def enqueue_calibration(job: CalibrationJob) -> None:
    """Send the job; if the broker cannot take it, the job fails at once with a message saying so."""
    try:
        enqueue(CALIBRATE_CAMERA, job.pk)
    except Exception:  # the job row is kept either way and says why nothing happened
        log.exception("could not queue calibration %s", job.pk)
        CalibrationJob.objects.filter(pk=job.pk, status=CalibrationJob.Status.QUEUED).update(
            status=CalibrationJob.Status.FAILED,
            message="could not reach the workers (broker down?); start the calibration again",
            finished_at=timezone.now(),
        )


def enqueue_adaptation(job: AdaptationJob) -> None:
    """Send the job; if the broker cannot take it, the job fails at once with a message saying so."""
    try:
        enqueue(ADAPT_CAMERA, job.pk)
    except Exception:  # the job row is kept either way and says why nothing happened
        log.exception("could not queue adaptation %s", job.pk)
        AdaptationJob.objects.filter(pk=job.pk, status=AdaptationJob.Status.QUEUED).update(
            status=AdaptationJob.Status.FAILED,
            message="could not reach the workers (broker down?); adapt the camera again",
            finished_at=timezone.now(),
        )


def enqueue_recount(job: RecountJob) -> None:
    try:
        enqueue(RECOUNT_PERIOD, job.pk)
    except Exception:
        log.exception("could not queue recount %s", job.pk)
        RecountJob.objects.filter(pk=job.pk, status=RecountJob.Status.QUEUED).update(
            status=RecountJob.Status.FAILED,
            message="could not reach the workers (broker down?); start the recount again",
            finished_at=timezone.now(),
        )


def queue_recount(camera, period_from, period_to, created_by, message: str) -> RecountJob:
    """Create a recount job of `camera`'s frames captured in [period_from, period_to) and send it to the workers once
    the transaction commits."""
    with transaction.atomic():
        job = RecountJob.objects.create(
            camera=camera, period_from=period_from, period_to=period_to, created_by=created_by, message=message
        )
        transaction.on_commit(lambda: enqueue_recount(job))
    return job
