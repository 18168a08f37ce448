"""SnapKV against the full cache, side by side in one run, on count histories like the ones reports are built from.

- Speed and memory: for prompts of 2K, 4K and the longest the model takes, the KV cache after prefill (MB),
  prefill seconds and decoding tokens/s, with the full cache and with SnapKV at each budget.
- Needle in the history: an unusual event with a four-digit number planted at depths 10%..90% of a count history;
  the model is asked for the number. One prefill per trial records the observation windows, and copies of its cache
  are compressed at each budget, so every setting answers from exactly the same prompt.
"""

from __future__ import annotations

import random
import re
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from llm_reports.llm import LocalLLM, Prefilled, cache_megabytes, text_of
from llm_reports.snapkv import SnapKV, SnapKVConfig

BUDGETS = (512, 1024, 2048)
DECODE_TOKENS = 64
DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)
CAMERAS = ("East gate", "Metro exit", "Square north", "Bund promenade", "Pedestrian street", "Bus terminal")
# Room left in the context for the question and the answer.
ANSWER_ROOM = 256
QUESTION = "How many people took part in the evacuation drill noted above?"


def history_lines(count: int, seed: int) -> list[str]:
    """Hourly count lines, as report prompts carry them: time, camera, mean and peak, zones."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1)
    lines = []
    for index in range(count):
        camera = CAMERAS[index % len(CAMERAS)]
        when = start + timedelta(hours=index // len(CAMERAS))
        mean = rng.randint(20, 260)
        lines.append(
            f"{when:%a %d %b %H:00} | {camera} | mean {mean} peak {mean + rng.randint(5, 90)} | "
            f"Far side {mean * 2 // 3}, Near side {mean // 3}"
        )
    return lines


def history_messages(
    llm: LocalLLM, prompt_tokens: int, seed: int, needle: str | None = None, depth: float = 0.5
) -> list[dict[str, str]]:
    """Chat messages whose prompt is about `prompt_tokens` long, with `needle` inserted at `depth` of the history."""
    lines = history_lines(20, seed)
    per_line = max(1, llm.count_tokens("\n".join(lines)) // len(lines))
    lines = history_lines(prompt_tokens // per_line, seed)
    while lines and llm.encode_chat(_messages(lines, needle, depth)).shape[1] > prompt_tokens:
        lines = lines[: -max(1, len(lines) // 200)]
    return _messages(lines, needle, depth)


def _messages(lines: list[str], needle: str | None, depth: float) -> list[dict[str, str]]:
    if needle is not None:
        lines = [*lines[: round(depth * len(lines))], needle, *lines[round(depth * len(lines)) :]]
    history = "\n".join(lines)
    return [{"role": "user", "content": f"Count history of the cameras, hour by hour:\n{history}\n\n{QUESTION}"}]


@dataclass(frozen=True)
class SpeedRow:
    prompt_tokens: int
    cache: str  # "full" or "snapkv-<budget>"
    kept_tokens: int
    kv_cache_mb: float
    prefill_s: float
    decode_tokens_per_s: float
    kv_smaller_x: float  # against the full cache at the same prompt, in this run
    decode_faster_x: float


def speed_rows(llm: LocalLLM, contexts: list[int]) -> list[SpeedRow]:
    rows = []
    for context in contexts:
        ids = llm.encode_chat(history_messages(llm, context, seed=context))
        full_mb: float | None = None
        full_rate: float | None = None
        for budget in (None, *BUDGETS):
            if budget is not None and budget >= ids.shape[1]:
                continue
            snapkv = SnapKV(SnapKVConfig(budget=budget)) if budget else None
            prefilled = llm.prefill(ids, snapkv)
            megabytes = cache_megabytes(prefilled.cache)
            tokens, seconds = llm.decode(prefilled, DECODE_TOKENS, stop_at_end_of_turn=False)
            rate = len(tokens) / seconds
            if budget is None:  # the reference the SnapKV rows of this prompt are compared with
                full_mb, full_rate = megabytes, rate
            assert full_mb is not None and full_rate is not None, "the full cache's row comes first"
            rows.append(
                SpeedRow(
                    prompt_tokens=ids.shape[1],
                    cache="full" if budget is None else f"snapkv-{budget}",
                    kept_tokens=prefilled.stats.kept_tokens,
                    kv_cache_mb=megabytes,
                    prefill_s=prefilled.seconds,
                    decode_tokens_per_s=rate,
                    kv_smaller_x=full_mb / megabytes,
                    decode_faster_x=rate / full_rate,
                )
            )
    return rows


def _answered(llm: LocalLLM, prefilled: Prefilled, number: int) -> bool:
    tokens, _ = llm.decode(prefilled, 16)
    digits = re.sub(r"[,\s]", "", text_of(llm.tokenizer, tokens, skip_special_tokens=True))
    return str(number) in digits


def needle_accuracy(llm: LocalLLM, prompt_tokens: int, trials_per_depth: int, window: int = 32) -> dict[str, dict]:
    """Accuracy per cache setting, overall and per depth, over the same planted prompts."""
    settings = {"full": None, **{f"snapkv-{budget}": SnapKV(SnapKVConfig(budget=budget)) for budget in BUDGETS}}
    hits: dict[str, dict[float, list[bool]]] = {name: {depth: [] for depth in DEPTHS} for name in settings}
    rng = random.Random(7)
    for depth in DEPTHS:
        for trial in range(trials_per_depth):
            number = rng.randint(1000, 9999)
            camera = rng.choice(CAMERAS)
            needle = f"NOTE: evacuation drill at {camera}, {number} people took part"
            messages = history_messages(llm, prompt_tokens, seed=trial, needle=needle, depth=depth)
            prefilled = llm.prefill_observed(llm.encode_chat(messages), window)
            for name, snapkv in settings.items():
                attempt = prefilled.copy()
                if snapkv is not None:
                    assert attempt.observed is not None, "prefill_observed records every layer's window"
                    snapkv.compress(attempt.cache, attempt.observed)
                hits[name][depth].append(_answered(llm, attempt, number))
    return {
        name: {
            "accuracy": statistics.mean(hit for depth_hits in by_depth.values() for hit in depth_hits),
            "trials": sum(len(depth_hits) for depth_hits in by_depth.values()),
            "by_depth": {f"{depth:.0%}": statistics.mean(depth_hits) for depth, depth_hits in by_depth.items()},
        }
        for name, by_depth in hits.items()
    }


def longest_prompt(llm: LocalLLM) -> int:
    return llm.context_length - ANSWER_ROOM


def run_needle_bench(llm: LocalLLM, trials_per_depth: int = 4) -> dict:
    longest = longest_prompt(llm)
    return {
        "model": llm.name,
        "speed": [asdict(row) for row in speed_rows(llm, [2048, 4096, longest])],
        "needle": {"prompt_tokens": longest, "depths": list(DEPTHS), **needle_accuracy(llm, longest, trials_per_depth)},
    }


def format_report(result: dict) -> str:
    lines = [
        f"SnapKV vs full cache, {result['model']} (one run; ratios against the full cache at the same prompt)",
        "| prompt tokens | cache | kept | KV MB | prefill s | decode tok/s | KV x smaller | decode x faster |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["speed"]:
        lines.append(
            f"| {row['prompt_tokens']} | {row['cache']} | {row['kept_tokens']} | {row['kv_cache_mb']:.1f} | "
            f"{row['prefill_s']:.1f} | {row['decode_tokens_per_s']:.1f} | {row['kv_smaller_x']:.2f} | "
            f"{row['decode_faster_x']:.2f} |"
        )
    needle = result["needle"]
    depths = [f"{depth:.0%}" for depth in needle["depths"]]
    lines += [
        "",
        f"Needle in a {needle['prompt_tokens']}-token history (accuracy; trials per setting in brackets)",
        f"| cache | all | {' | '.join(depths)} |",
        "|---|---|" + "---|" * len(depths),
    ]
    for name, outcome in needle.items():
        if isinstance(outcome, dict):
            by_depth = " | ".join(f"{outcome['by_depth'][depth]:.0%}" for depth in depths)
            lines.append(f"| {name} | {outcome['accuracy']:.0%} ({outcome['trials']}) | {by_depth} |")
    return "\n".join(lines)
