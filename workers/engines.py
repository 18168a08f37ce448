"""Counting engines, loaded once per worker process and kept for its lifetime."""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

from django.conf import settings

from counting.engine import CountingEngine, configure_threads
from counting.versions import weights_version

log = logging.getLogger(__name__)


@cache
def engine_for(arch: str) -> CountingEngine:
    configure_threads(settings.COUNTING_THREADS)
    engine = CountingEngine(
        arch,
        settings.COUNTING_WEIGHTS.get(arch) or None,
        precision=settings.COUNTING_PRECISION,
        device=settings.COUNTING_DEVICE,
    )
    log.info("process %d loaded %s (%s)", os.getpid(), arch, model_version(engine.weights))
    return engine


@cache
def model_version(weights: Path) -> str:
    return weights_version(weights)
