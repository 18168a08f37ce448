"""Hand a stored frame to the workers, on the queue of its camera's counting model."""

from __future__ import annotations

import logging

from django.conf import settings

from webapp.celery_app import enqueue
from webapp.ingest.models import Frame
from webapp.queues import COUNT_FRAME, COUNT_FRAME_IN_BATCH, count_queue

log = logging.getLogger(__name__)


def enqueue_count(frame: Frame) -> None:
    """Send the count task, the batched one for the models of CROWDSCOPE_BATCHED_MODELS; if the broker cannot take it,
    the frame stays queued and the beat re-sends it."""
    model = frame.camera.counting_model
    task = COUNT_FRAME_IN_BATCH if model in settings.CROWDSCOPE_BATCHED_MODELS else COUNT_FRAME
    try:
        enqueue(task, frame.pk, queue=count_queue(model))
    except Exception:  # the upload is stored either way; `requeue_stale_frames` sends it again
        log.exception("could not queue frame %s; it will be re-sent", frame.pk)
        Frame.objects.filter(pk=frame.pk).update(enqueued_at=None)
