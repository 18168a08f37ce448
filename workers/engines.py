"""Counting engines, loaded once per worker process: the default weights of each model for the process's lifetime,
and cameras' calibrated weights on demand, a few of them kept in memory (least recently used goes first). Calibrated
weights live in the media storage (maybe a bucket on another host): each is loaded from a copy in this host's
CROWDSCOPE_WEIGHTS_CACHE_DIR (webapp.ingest.storage.local_copy)."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from functools import cache
from pathlib import Path

from django.conf import settings

from counting.engine import CountingEngine, configure_threads
from counting.versions import weights_version
from webapp.cameras.models import Camera
from webapp.ingest.storage import local_copy

log = logging.getLogger(__name__)

_calibrated: OrderedDict[tuple[str, str], CountingEngine] = OrderedDict()
_calibrated_lock = threading.Lock()
_default_lock = threading.Lock()


def _load(arch: str, weights: str | Path | None) -> CountingEngine:
    configure_threads(settings.COUNTING_THREADS)
    engine = CountingEngine(arch, weights, precision=settings.COUNTING_PRECISION, device=settings.COUNTING_DEVICE)
    log.info("process %d loaded %s (%s)", os.getpid(), arch, model_version(engine.weights))
    return engine


def engine_for(arch: str) -> CountingEngine:
    """The default weights of `arch` (ours, or COUNTING_WEIGHTS'), loaded once per process: the threads of a worker
    that runs a pool of threads wait for the first one's engine instead of each loading a copy (and batch together)."""
    with _default_lock:
        return _default_engine(arch)


@cache
def _default_engine(arch: str) -> CountingEngine:
    return _load(arch, settings.COUNTING_WEIGHTS.get(arch) or None)


def calibrated_engine(arch: str, weights: Path) -> CountingEngine:
    """An engine for a calibrated checkpoint, from the process's LRU of CROWDSCOPE_WEIGHTS_CACHE engines.

    Keyed by path: `local_copy` names a stored file replaced in the storage by a new path, so it is loaded afresh.
    """
    key = (arch, str(weights))
    with _calibrated_lock:
        engine = _calibrated.pop(key, None) or _load(arch, weights)
        _calibrated[key] = engine
        while len(_calibrated) > max(1, settings.CROWDSCOPE_WEIGHTS_CACHE):
            _calibrated.popitem(last=False)
    return engine


def camera_engine(camera: Camera) -> tuple[CountingEngine, str]:
    """The engine that counts `camera`'s frames now, and the version its results store: the weights file and the
    start of its SHA-256, after the calibrated version's label when there is one (`cam3-v2 v2.pt@0123456789ab`).

    Raises FileNotFoundError when the calibrated weights are gone from the storage, StorageUnavailable when it cannot
    be read now."""
    version = camera.active_weights
    if version is None:
        engine = engine_for(camera.counting_model)
        return engine, model_version(engine.weights)
    path = local_copy(version.weights, settings.CROWDSCOPE_WEIGHTS_CACHE_DIR)
    return calibrated_engine(version.arch, path), f"{version.label} {model_version(path)}"


@cache
def model_version(weights: Path) -> str:
    return weights_version(weights)
