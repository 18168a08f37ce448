"""The report LLM, loaded once per worker process (reports are written on the `reports` queue)."""

from __future__ import annotations

import logging
import os
from functools import cache

from django.conf import settings

from llm_reports.llm import LLMConfig, LocalLLM

log = logging.getLogger(__name__)


@cache
def shared_llm() -> LocalLLM:
    llm = LocalLLM(
        LLMConfig(model=settings.LLM_MODEL or None, device=settings.LLM_DEVICE, threads=settings.LLM_THREADS)
    )
    log.info("process %d loaded the report model %s", os.getpid(), llm.name)
    return llm
