"""Hand a stored frame to the workers, on the queue of its camera's counting model."""

from __future__ import annotations

import logging

from webapp.celery_app import enqueue
from webapp.ingest.models import Frame
from webapp.queues import COUNT_FRAME, count_queue

log = logging.getLogger(__name__)


def enqueue_count(frame: Frame) -> None:
    """Send the count task; if the broker cannot take it, the frame stays queued and the beat re-sends it."""
    try:
        enqueue(COUNT_FRAME, frame.pk, queue=count_queue(frame.camera.counting_model))
    except Exception:  # the upload is stored either way; `requeue_stale_frames` sends it again
        log.exception("could not queue frame %s; it will be re-sent", frame.pk)
        Frame.objects.filter(pk=frame.pk).update(enqueued_at=None)
