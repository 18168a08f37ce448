"""Events for `/metrics` (webapp.health.metrics), from whichever process they happen in.

Web workers accept frames, counting workers count them, the reports worker sends emails: each adds its events to one
Redis hash on the broker, and the web process that is scraped reads the totals there, so no process's figures are lost
with it and a scrape sees all of them. An event that cannot be recorded is logged and dropped; it never fails the work.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left
from functools import cache

import redis
from django.conf import settings

log = logging.getLogger(__name__)

EVENTS_KEY = "crowdscope:metrics"
# Seconds: a frame's inference takes a tenth to a few seconds on a CPU; a backlog holds a frame for minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
REDIS_TIMEOUT_S = 1.0

# name: (help, label names)
COUNTERS = {
    "crowdscope_frames_received": ("frames accepted from gateways (uploads and edge results)", ("camera_id",)),
    "crowdscope_frames_counted": ("frames whose count was stored (by a worker or on the gateway)", ("camera_id",)),
    "crowdscope_frames_failed": ("frames marked failed, for good", ("camera_id",)),
    "crowdscope_email_deliveries": ("daily report emails by outcome: sent, retrying, failed", ("outcome",)),
}
HISTOGRAMS = {
    "crowdscope_inference_seconds": ("the model's time for one frame", ("model",)),
    "crowdscope_frame_latency_seconds": ("from a frame's upload being accepted to its count being stored", ()),
}


def events_store() -> redis.Redis:
    """The broker's Redis, where the totals live (one client per broker URL and process)."""
    return _client(settings.CELERY_BROKER_URL)


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)


def _field(kind: str, name: str, labels: dict[str, object], bucket: int | None = None) -> str:
    return json.dumps([kind, name, {key: str(value) for key, value in sorted(labels.items())}, bucket])


def _add(increments: dict[str, float]) -> None:
    """Add to the shared totals, or log why not."""
    try:
        pipeline = events_store().pipeline(transaction=False)
        for field, amount in increments.items():
            pipeline.hincrbyfloat(EVENTS_KEY, field, amount)
        pipeline.execute()
    except redis.RedisError as error:
        log.warning("metrics not recorded: %s", error)


def count_event(name: str, amount: float = 1.0, **labels: object) -> None:
    """Add `amount` to the counter `name` (one of COUNTERS) with these label values."""
    if name not in COUNTERS or set(labels) != set(COUNTERS[name][1]):
        raise ValueError(f"no counter {name} with labels {sorted(labels)}")
    _add({_field("counter", name, labels): amount})


def observe_seconds(name: str, seconds: float, **labels: object) -> None:
    """Record one duration in the histogram `name` (one of HISTOGRAMS)."""
    if name not in HISTOGRAMS or set(labels) != set(HISTOGRAMS[name][1]):
        raise ValueError(f"no histogram {name} with labels {sorted(labels)}")
    bucket = bisect_left(LATENCY_BUCKETS, seconds)  # the first bucket whose bound holds it; len(...): +Inf only
    _add({_field("bucket", name, labels, bucket): 1.0, _field("sum", name, labels): seconds})
