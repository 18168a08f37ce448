"""A report from a history of counts: facts in code, the narrative from the LLM on a SnapKV-compressed history,
every sentence checked against the facts before anyone reads it; and follow-up questions on the kept prompt cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import torch
from transformers.cache_utils import DynamicCache

from llm_reports.facts import Facts, compute_facts
from llm_reports.history import History
from llm_reports.llm import LocalLLM, Prefilled, cache_megabytes
from llm_reports.plain import summary_sentences
from llm_reports.prompt import QUESTION_INSTRUCTION, build_messages
from llm_reports.snapkv import CompressionStats, SnapKV, SnapKVConfig
from llm_reports.verify import Verification, split_sentences, verify

# Room in the context for the chat template's markers, the narrative and later follow-up questions.
RESERVED_TOKENS = 768
MIN_SENTENCES = 3
NO_ANSWER = "The facts computed for this period do not answer that question."
CORRECTION_TOKENS = 80


@dataclass(frozen=True)
class ReportSettings:
    snapkv: SnapKVConfig | None = field(default_factory=SnapKVConfig)  # None: the full cache
    max_new_tokens: int = 320
    max_prompt_tokens: int | None = None  # default: the model's context less RESERVED_TOKENS


@dataclass
class WrittenReport:
    text: str
    facts: Facts
    verification: Verification
    messages: list[dict[str, str]]  # the prompt, needed to continue the conversation from the prompt cache
    prompt_cache: Prefilled  # the compressed prompt cache before the narrative: follow-up questions start from it
    prompt_tokens: int
    kept_tokens: int
    prefill_seconds: float
    decode_tokens_per_second: float
    kv_cache_mb: float
    model: str


@dataclass(frozen=True)
class Answer:
    text: str
    verification: Verification
    seconds: float


def _corrector(llm: LocalLLM):
    """The verifier's way of asking the model again: a short, self-contained prompt about one sentence."""

    def regenerate(prompt: str) -> str:
        return llm.generate([{"role": "user", "content": prompt}], max_new_tokens=CORRECTION_TOKENS).text

    return regenerate


def without_repeats(text: str) -> str:
    """The narrative with any sentence it already said dropped (small models loop)."""
    seen: set[str] = set()
    kept = []
    for sentence in split_sentences(text):
        key = " ".join(sentence.lower().split())
        if key not in seen:
            seen.add(key)
            kept.append(sentence)
    return " ".join(kept)


def with_enough_facts(verification: Verification, facts: Facts) -> Verification:
    """When checking left the narrative too thin, the period's summary sentences (plain facts) complete it."""
    sentences = split_sentences(verification.text)
    missing = [line for line in summary_sentences(facts) if line not in sentences]
    added = missing[: max(0, MIN_SENTENCES - len(sentences))]
    if not added:
        return verification
    return replace(verification, text=" ".join([verification.text.strip(), *added]).strip())


def write_report(llm: LocalLLM, history: History, settings: ReportSettings | None = None) -> WrittenReport:
    settings = settings or ReportSettings()
    facts = compute_facts(history)
    budget = settings.max_prompt_tokens or llm.context_length - RESERVED_TOKENS
    messages = build_messages(history, facts, llm.count_tokens, budget)
    snapkv = SnapKV(settings.snapkv) if settings.snapkv else None
    prefilled = llm.prefill(llm.encode_chat(messages), snapkv)
    kept = prefilled.copy()
    generation = llm.finish(prefilled, settings.max_new_tokens)
    verification = verify(without_repeats(generation.text), facts, regenerate=_corrector(llm), strict=True)
    verification = with_enough_facts(verification, facts)
    return WrittenReport(
        text=verification.text,
        facts=facts,
        verification=verification,
        messages=messages,
        prompt_cache=kept,
        prompt_tokens=generation.prompt_tokens,
        kept_tokens=generation.kept_tokens,
        prefill_seconds=generation.prefill_seconds,
        decode_tokens_per_second=generation.decode_tokens_per_second,
        kv_cache_mb=cache_megabytes(kept.cache),
        model=llm.name,
    )


@dataclass
class KeptPromptCache:
    """The compressed prompt cache of a report and the prompt it holds: what a follow-up question continues."""

    prefilled: Prefilled
    messages: list[dict[str, str]]


def answer_follow_up(
    llm: LocalLLM, kept: KeptPromptCache, report_text: str, facts: Facts, question: str, max_new_tokens: int = 160
) -> Answer:
    """Answer a question about the report's period from its kept prompt cache: only the report and the question
    are run through the model, never the history again. The answer is verified like the report."""
    started = time.perf_counter()
    later = [
        {"role": "assistant", "content": report_text},
        {"role": "user", "content": QUESTION_INSTRUCTION.format(question=question)},
    ]
    asked = llm.extend(kept.prefilled.copy(), llm.encode_continuation(kept.messages, later))
    generation = llm.finish(asked, max_new_tokens)
    verification = verify(without_repeats(generation.text), facts, regenerate=_corrector(llm), strict=True)
    text = verification.text.strip() or NO_ANSWER
    return Answer(text, verification, time.perf_counter() - started)


def save_prompt_cache(report: WrittenReport, target: str | Path | BinaryIO) -> None:
    """The report's compressed prompt cache and prompt on disk, so any worker can answer questions later."""
    prefilled = report.prompt_cache
    torch.save(
        {
            "layers": [(layer.keys, layer.values) for layer in prefilled.cache.layers],
            "next_logits": prefilled.next_logits,
            "positions": prefilled.positions,
            "messages": report.messages,
        },
        target,
    )


def load_prompt_cache(llm: LocalLLM, source: str | Path | BinaryIO) -> KeptPromptCache:
    saved = torch.load(source, map_location=llm.config.device, weights_only=True)
    cache = DynamicCache(config=llm.model.config)
    for index, (keys, values) in enumerate(saved["layers"]):
        cache.update(keys, values, index)
    stats = CompressionStats(prompt_tokens=saved["positions"], kept_tokens=saved["layers"][0][0].shape[2])
    return KeptPromptCache(Prefilled(cache, saved["next_logits"], saved["positions"], stats, 0.0), saved["messages"])
