"""Reports from the database: build the history, have the LLM choose the facts the narrative tells, store it all.

Loads transformers and torch: imported by the workers' report tasks and the report commands, never by the pages
(they only create pending reports, webapp.reports.pending).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import asdict
from functools import cache

from django.conf import settings
from django.core.files.base import ContentFile

from llm_reports.events import Event
from llm_reports.llm import LLMConfig, LocalLLM
from llm_reports.report import ReportSettings, answer_follow_up, load_prompt_cache, save_prompt_cache, write_report
from llm_reports.snapkv import SnapKVConfig
from webapp.reports.history import build_history
from webapp.reports.models import Question, Report

log = logging.getLogger(__name__)


@cache
def shared_llm() -> LocalLLM:
    """The report LLM of the LLM_* settings, loaded once per process (the workers' `reports` queue, or a command)."""
    llm = LocalLLM(
        LLMConfig(model=settings.LLM_MODEL or None, device=settings.LLM_DEVICE, threads=settings.LLM_THREADS)
    )
    log.info("process %d loaded the report model %s", os.getpid(), llm.name)
    return llm


def report_settings() -> ReportSettings:
    budget = settings.REPORT_SNAPKV_BUDGET
    return ReportSettings(snapkv=SnapKVConfig(budget=budget) if budget else None)


def generate(report: Report, llm: LocalLLM) -> Report:
    """Write the pending `report` (webapp.reports.pending.create_report made it) with `llm` and store it, done.

    Stores the report as failed, with the error, and raises it again when building the history or writing fails."""
    cameras = list(report.cameras.select_related("site").prefetch_related("zones"))
    try:
        history = build_history(cameras, report.period_start, report.period_end, report.timezone)
        written = write_report(llm, history, report_settings())
    except Exception as error:
        report.status, report.error = Report.Status.FAILED, f"{type(error).__name__}: {error}"
        report.save(update_fields=["status", "error"])
        raise
    report.text = written.text
    report.told = [asdict(sentence) for sentence in written.sentences]
    report.events = [event.as_dict() for event in written.events]
    report.facts = written.facts.as_dict()
    report.model_name = written.model
    report.model_reply = written.model_reply
    report.prompt_tokens = written.prompt_tokens
    report.kept_tokens = written.kept_tokens
    report.prefill_seconds = written.prefill_seconds
    report.decode_tokens_per_second = written.decode_tokens_per_second
    report.kv_cache_mb = written.kv_cache_mb
    buffer = io.BytesIO()
    save_prompt_cache(written, buffer)
    report.history_cache.save("history.pt", ContentFile(buffer.getvalue()), save=False)
    report.status, report.error = Report.Status.DONE, ""
    report.save()
    return report


def answer(question: Question, llm: LocalLLM) -> Question:
    """Answer from the report's kept prompt cache, with the report's stored events and the model's stored reply.

    Never with facts recomputed from the counts: counts may have arrived since, and the ids the kept cache's prompt
    listed are those of the stored events."""
    report = question.report
    with report.history_cache.open("rb") as handle:
        kept = load_prompt_cache(llm, io.BytesIO(handle.read()))
    events = tuple(Event.from_dict(event) for event in report.events)
    answered = answer_follow_up(llm, kept, report.model_reply, events, question.text)
    question.answer = answered.text
    question.fact_ids = list(answered.fact_ids)
    question.seconds = answered.seconds
    question.save(update_fields=["answer", "fact_ids", "seconds"])
    return question
