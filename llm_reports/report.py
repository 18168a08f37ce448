"""A report from a history of counts, true by construction: facts and their sentences in code (`events`), the choice
and order of facts by the LLM reading the SnapKV-compressed history, and follow-up questions on the kept prompt cache.

The model's words never reach an operator. Its decoding is constrained to a list of fact ids (`llm.OptionList`), so a
small model that would drift into prose still answers with ids; each id becomes the sentence `events` rendered for
it, and every event important enough to be a must (`events.MUST_TELL`) is told even when the model leaves it out.
Without a model (llm None) the code's own ranking chooses: the benchmark compares the two.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import torch
from transformers.cache_utils import CacheLayerMixin, DynamicCache

from llm_reports.events import KIND_LABELS, Event, EventKind, find_events, must_tell
from llm_reports.facts import Facts, compute_facts
from llm_reports.history import History
from llm_reports.llm import LocalLLM, OptionList, Prefilled, cache_megabytes
from llm_reports.prompt import QUESTION_INSTRUCTION, build_messages
from llm_reports.snapkv import CompressionStats, SnapKV, SnapKVConfig

# Room in the context for the chat template's markers, the answer and later follow-up questions.
RESERVED_TOKENS = 768
CHOICE_TOKENS = 48  # ids and commas: "F3, F1, F7, F12, F5, F4, F11, F10" is 30 tokens
MIN_CHOSEN, MAX_CHOSEN = 4, 8  # what the instruction asks for (prompt.DEFAULT_INSTRUCTION)
MIN_TOLD = 4
MAX_TOLD = 10
MAX_ANSWER_FACTS = 3
NO_FACT = "NONE"  # a question's answer when no fact answers it
# Words of a question (lower case, matched as word starts) and the kinds of fact that can answer it.
QUESTION_WORDS: dict[str, tuple[EventKind, ...]] = {
    "alert": ("alert", "breach"),  # a subject's alerts are told with its hours over the threshold
    "acknowledg": ("alert", "breach"),
    "threshold": ("breach", "alert"),
    "crowd": ("breach", "alert", "unusual_hour"),
    "down": ("outage",),
    "silent": ("outage",),
    "offline": ("outage",),
    "outage": ("outage",),
    "fail": ("outage",),
    "broke": ("outage",),
    "busiest": ("busiest_hour", "ranking"),
    "busy": ("busiest_hour", "ranking", "level"),
    "quiet": ("unusual_day", "unusual_hour", "ranking"),
    "usual": ("unusual_hour", "unusual_day"),
    "unusual": ("unusual_hour", "unusual_day"),
    "normal": ("unusual_hour", "unusual_day"),
    "week": ("week_change",),
    "peak": ("level", "busiest_hour", "breach"),
    "average": ("level", "ranking"),
    "how many": ("level", "ranking"),
}


@dataclass(frozen=True)
class ReportSettings:
    snapkv: SnapKVConfig | None = field(default_factory=SnapKVConfig)  # None: the full cache
    max_prompt_tokens: int | None = None  # default: the model's context less RESERVED_TOKENS


@dataclass(frozen=True)
class ToldSentence:
    text: str
    fact_id: str
    chosen_by_model: bool  # False: a must-tell event the model left out, or the code's choice without a model


@dataclass
class WrittenReport:
    text: str
    sentences: tuple[ToldSentence, ...]
    events: tuple[Event, ...]  # every fact the report could tell, ranked; the prompt listed them by id
    facts: Facts
    model: str  # "" without a model
    model_reply: str  # the model's raw answer (ids), kept to show what it chose
    seconds: float
    prompt_tokens: int = 0
    kept_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens_per_second: float = 0.0
    kv_cache_mb: float = 0.0
    messages: list[dict[str, str]] = field(default_factory=list)  # the prompt, continued by follow-up questions
    prompt_cache: Prefilled | None = None  # the compressed prompt cache before the reply: questions start from it


@dataclass(frozen=True)
class Answer:
    text: str
    fact_ids: tuple[str, ...]  # empty: the facts do not answer the question
    seconds: float


def compose(events: tuple[Event, ...], chosen: list[str]) -> tuple[ToldSentence, ...]:
    """The narrative's sentences, leading with what matters most: the must-tell events the model chose, in its
    order, then those it left out, in rank order; then the other facts it chose, in its order; then the next-ranked
    facts up to MIN_TOLD. At most MAX_TOLD in all: optional facts give way first, the least important first."""
    by_id = {event.id: event for event in events}
    musts = [event.id for event in must_tell(events)]
    order = [
        *(fact_id for fact_id in chosen if fact_id in musts),
        *(fact_id for fact_id in musts if fact_id not in chosen),
        *(fact_id for fact_id in chosen if fact_id not in musts),
    ]
    order += [event.id for event in events if event.id not in order][: max(0, MIN_TOLD - len(order))]
    if len(order) > MAX_TOLD:
        room = max(0, MAX_TOLD - len(musts))
        optional = sorted((fact_id for fact_id in order if fact_id not in musts), key=lambda i: -by_id[i].importance)
        order = [fact_id for fact_id in order if fact_id in musts or fact_id in optional[:room]][:MAX_TOLD]
    return tuple(ToldSentence(by_id[fact_id].sentence, fact_id, fact_id in chosen) for fact_id in order)


def write_report(llm: LocalLLM | None, history: History, settings: ReportSettings | None = None) -> WrittenReport:
    """The report of `history`'s period: the model (or, with llm None, the ranking) chooses, code tells."""
    started = time.perf_counter()
    settings = settings or ReportSettings()
    facts = compute_facts(history)
    events = find_events(history, facts)
    if llm is None:
        sentences = compose(events, [])
        return WrittenReport(_joined(sentences), sentences, events, facts, "", "", time.perf_counter() - started)
    budget = settings.max_prompt_tokens or llm.context_length - RESERVED_TOKENS
    messages = build_messages(history, facts, events, llm.count_tokens, budget)
    snapkv = SnapKV(settings.snapkv) if settings.snapkv else None
    prefilled = llm.prefill(llm.encode_chat(messages), snapkv)
    kept = prefilled.copy()
    choice = OptionList(llm.tokenizer, [event.id for event in events], MIN_CHOSEN, MAX_CHOSEN)
    generation = llm.finish(prefilled, CHOICE_TOKENS, choice)
    sentences = compose(events, choice.chosen(generation.text))
    return WrittenReport(
        text=_joined(sentences),
        sentences=sentences,
        events=events,
        facts=facts,
        model=llm.name,
        model_reply=generation.text,
        seconds=time.perf_counter() - started,
        prompt_tokens=generation.prompt_tokens,
        kept_tokens=generation.kept_tokens,
        prefill_seconds=generation.prefill_seconds,
        decode_tokens_per_second=generation.decode_tokens_per_second,
        kv_cache_mb=cache_megabytes(kept.cache),
        messages=messages,
        prompt_cache=kept,
    )


def _joined(sentences: tuple[ToldSentence, ...]) -> str:
    return " ".join(sentence.text for sentence in sentences)


@dataclass
class KeptPromptCache:
    """The compressed prompt cache of a report and the prompt it holds: what a follow-up question continues."""

    prefilled: Prefilled
    messages: list[dict[str, str]]


def refusal(events: tuple[Event, ...]) -> str:
    """What a question the facts do not answer gets: the kinds of fact the period has, which questions can ask about."""
    kinds = list(dict.fromkeys(KIND_LABELS[event.kind] for event in events))
    listed = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
    return "The facts computed for this period do not answer that question" + (
        f"; they cover: {listed}." if kinds else "."
    )


def answering_events(events: tuple[Event, ...], question: str) -> list[Event]:
    """The facts that can answer `question`: those of the kinds its words ask about (`QUESTION_WORDS`) and about the
    cameras, zones or sites it names, most important first. Empty when it names neither: then no fact answers it."""
    asked = question.lower()
    kinds = {kind for word, answering in QUESTION_WORDS.items() if re.search(rf"\b{word}", asked) for kind in answering}
    names = {
        name
        for event in events
        for name in (event.camera, event.zone, event.site)
        if name and re.search(rf"\b{re.escape(name.lower())}\b", asked)
    }
    if not kinds and not names:
        return []
    return [
        event
        for event in events
        if (not kinds or event.kind in kinds)
        and (not names or names & {event.camera, event.zone, event.site} or any(n in event.sentence for n in names))
    ]


def answer_follow_up(
    llm: LocalLLM, kept: KeptPromptCache, reply: str, events: tuple[Event, ...], question: str
) -> Answer:
    """Answer a question about the report's period from its kept prompt cache: only the model's earlier reply and
    the question are run through the model, never the history again. The model may name only the facts that can
    answer the question (`answering_events`), or NONE; the answer is those facts' sentences (at most
    MAX_ANSWER_FACTS), or `refusal` when there are none or the model names none."""
    started = time.perf_counter()
    candidates = answering_events(events, question)
    if not candidates:
        return Answer(refusal(events), (), time.perf_counter() - started)
    later = [
        {"role": "assistant", "content": reply},
        {"role": "user", "content": QUESTION_INSTRUCTION.format(question=question)},
    ]
    asked = llm.extend(kept.prefilled.copy(), llm.encode_continuation(kept.messages, later))
    choice = OptionList(llm.tokenizer, [NO_FACT, *(event.id for event in candidates)], 1, MAX_ANSWER_FACTS)
    chosen = choice.chosen(llm.finish(asked, CHOICE_TOKENS, choice).text)
    # Facts named after NONE are the model hedging: only those before it answer.
    chosen = chosen[: chosen.index(NO_FACT)] if NO_FACT in chosen else chosen
    by_id = {event.id: event for event in candidates}
    text = " ".join(by_id[fact_id].sentence for fact_id in chosen) if chosen else refusal(events)
    return Answer(text, tuple(chosen), time.perf_counter() - started)


def save_prompt_cache(report: WrittenReport, target: str | Path | BinaryIO) -> None:
    """The report's compressed prompt cache and prompt on disk, so any worker can answer questions later."""
    prefilled = report.prompt_cache
    if prefilled is None:
        raise ValueError("a report written without a model has no prompt cache")
    layers = []
    for layer in prefilled.cache.layers:
        if not isinstance(layer, CacheLayerMixin):
            raise ValueError(f"a {type(layer).__name__} cache layer cannot be saved: attention layers' caches only")
        layers.append((layer.keys, layer.values))
    torch.save(
        {
            "layers": layers,
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
