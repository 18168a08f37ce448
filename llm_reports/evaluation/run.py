"""The report benchmark: reports of the planted scenarios under each setting, judged by the independent checker.

Per setting it measures recall (the planted events some sentence names, per kind), the sentences the checker finds
untrue (with their reasons), words and seconds per report, and the model's KV cache, kept and prompt tokens, how
many of the told sentences it chose and in how many reports it chose anything but the top of the code's ranking
(what the model adds). Targets: recall >= 90%, no untrue sentence, every report within 60 s.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from llm_reports.evaluation.check import Checker, names_event
from llm_reports.evaluation.scenarios import PLANTED_KINDS, Planted, Scenario, build_scenarios
from llm_reports.llm import LocalLLM
from llm_reports.report import ReportSettings, WrittenReport, write_report
from llm_reports.snapkv import SnapKVConfig

EVAL_SETTINGS: dict[str, ReportSettings | None] = {
    "full cache": ReportSettings(snapkv=None),
    "SnapKV 1024": ReportSettings(snapkv=SnapKVConfig(budget=1024)),
    "SnapKV 512": ReportSettings(snapkv=SnapKVConfig(budget=512)),
    "no model": None,  # the code's ranking chooses
}
TARGET_RECALL = 0.9
TARGET_SECONDS = 60.0


def run_eval(
    llm: LocalLLM | None, settings_names: list[str] | None = None, scenarios: list[Scenario] | None = None
) -> dict[str, Any]:
    """Every scenario's report under each named setting (default: all of `EVAL_SETTINGS`, or only "no model" when
    `llm` is None), as a JSON-able dict. Naming a model setting without a model is a ValueError."""
    scenarios = build_scenarios() if scenarios is None else scenarios
    names = settings_names or (list(EVAL_SETTINGS) if llm is not None else ["no model"])
    for name in names:
        if name not in EVAL_SETTINGS:
            raise ValueError(f"unknown setting {name!r}; the settings are {', '.join(EVAL_SETTINGS)}")
        if EVAL_SETTINGS[name] is not None and llm is None:
            raise ValueError(f"the setting {name!r} needs a model")
    checkers = {scenario.name: Checker(scenario.history) for scenario in scenarios}
    return {
        "model": llm.name if llm is not None else "",
        "scenarios": [
            {"name": scenario.name, "planted": [_planted(planted) for planted in scenario.planted]}
            for scenario in scenarios
        ],
        "targets": {"recall": TARGET_RECALL, "untrue": 0, "seconds_per_report": TARGET_SECONDS},
        "settings": {name: _evaluate(llm, EVAL_SETTINGS[name], scenarios, checkers) for name in names},
    }


@dataclass
class _Recall:
    """Of one kind's planted events, how many some sentence named."""

    named: int = 0
    planted: int = 0


@dataclass(frozen=True)
class _UntrueSentence:
    scenario: str
    sentence: str
    reason: str
    unchecked: bool  # the checker could not decide it: counted untrue all the same


@dataclass(frozen=True)
class _ReportFigures:
    """One scenario's report under one setting."""

    scenario: str
    sentences: int
    chosen_by_model: int
    words: int
    seconds: float
    kv_cache_mb: float
    prompt_tokens: int
    kept_tokens: int
    model_reply: str
    differs_from_ranking: bool

    @classmethod
    def of(cls, scenario: str, written: WrittenReport) -> _ReportFigures:
        chosen = written.model_reply.split(", ") if written.model_reply else []
        return cls(
            scenario=scenario,
            sentences=len(written.sentences),
            chosen_by_model=sum(told.chosen_by_model for told in written.sentences),
            words=len(written.text.split()),
            seconds=written.seconds,
            kv_cache_mb=written.kv_cache_mb,
            prompt_tokens=written.prompt_tokens,
            kept_tokens=written.kept_tokens,
            model_reply=written.model_reply,
            # What the model adds: whether it chose anything but the top of the code's ranking, in that order.
            differs_from_ranking=bool(chosen) and chosen != [event.id for event in written.events[: len(chosen)]],
        )


def _evaluate(
    llm: LocalLLM | None, settings: ReportSettings | None, scenarios: list[Scenario], checkers: dict[str, Checker]
) -> dict[str, Any]:
    """One setting's outcome over `scenarios`, JSON-able: recall, untrue sentences, missed events, the figures of
    each report and their totals or means, and whether it meets the targets."""
    recall: dict[str, _Recall] = {kind: _Recall() for kind in PLANTED_KINDS}
    untrue: list[_UntrueSentence] = []
    missed: list[dict[str, Any]] = []
    reports: list[_ReportFigures] = []
    for scenario in scenarios:
        written = write_report(llm if settings is not None else None, scenario.history, settings)
        sentences = [told.text for told in written.sentences]
        untrue += [
            _UntrueSentence(scenario.name, verdict.sentence, verdict.reason, verdict.unchecked)
            for verdict in map(checkers[scenario.name].check, sentences)
            if not verdict.true
        ]
        for planted in scenario.planted:
            named = names_event(planted, sentences)
            recall[planted.kind].planted += 1
            recall[planted.kind].named += named
            if not named:
                missed.append({"scenario": scenario.name, **_planted(planted)})
        reports.append(_ReportFigures.of(scenario.name, written))
    return _summary(recall, untrue, missed, reports)


def _summary(
    recall: dict[str, _Recall],
    untrue: list[_UntrueSentence],
    missed: list[dict[str, Any]],
    reports: list[_ReportFigures],
) -> dict[str, Any]:
    named_total = sum(kind.named for kind in recall.values())
    planted_total = sum(kind.planted for kind in recall.values())
    share = named_total / planted_total if planted_total else 1.0
    seconds = [report.seconds for report in reports]
    return {
        "recall": {kind: asdict(counts) for kind, counts in recall.items() if counts.planted},
        "recall_total": {"named": named_total, "planted": planted_total, "share": share},
        "sentences": sum(report.sentences for report in reports),
        "chosen_by_model": sum(report.chosen_by_model for report in reports),
        "differs_from_ranking": sum(report.differs_from_ranking for report in reports),
        "untrue": [asdict(item) for item in untrue],
        "unchecked": sum(item.unchecked for item in untrue),
        "missed": missed,
        "words_per_report": statistics.fmean(report.words for report in reports),
        "seconds_per_report": {"mean": statistics.fmean(seconds), "max": max(seconds)},
        "kv_cache_mb": statistics.fmean(report.kv_cache_mb for report in reports),
        "prompt_tokens": statistics.fmean(report.prompt_tokens for report in reports),
        "kept_tokens": statistics.fmean(report.kept_tokens for report in reports),
        "reports": [asdict(report) for report in reports],
        "meets_targets": share >= TARGET_RECALL and not untrue and max(seconds) <= TARGET_SECONDS,
    }


def _planted(planted: Planted) -> dict[str, Any]:
    return {
        "kind": planted.kind,
        "camera": planted.camera,
        "zone": planted.zone,
        "start": planted.start.isoformat(),
        "end": planted.end.isoformat() if planted.end else None,
    }


def format_eval(result: dict[str, Any]) -> str:
    """A plain-text summary: one row per setting, recall per kind, then every untrue sentence and missed event."""
    settings = result["settings"]
    planted = sum(len(scenario["planted"]) for scenario in result["scenarios"])
    targets = result["targets"]
    lines = [
        f"Report benchmark: {len(result['scenarios'])} scenarios, {planted} planted events, "
        f"model {result['model'] or '(none)'}",
        f"Targets: recall >= {targets['recall']:.0%}, {targets['untrue']} untrue sentences, "
        f"<= {targets['seconds_per_report']:.0f} s a report",
        "",
        "| setting | recall | untrue (unchecked) | sentences (model's) | choices not the ranking's top | words/report "
        "| s/report mean | s max | KV MB | kept/prompt tokens | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, outcome in settings.items():
        total = outcome["recall_total"]
        model_row = outcome["prompt_tokens"] > 0
        cache = f"{outcome['kv_cache_mb']:.1f}" if model_row else "-"
        tokens = f"{outcome['kept_tokens']:.0f}/{outcome['prompt_tokens']:.0f}" if model_row else "-"
        lines.append(
            f"| {name} | {total['share']:.0%} ({total['named']}/{total['planted']}) | {len(outcome['untrue'])} "
            f"({outcome['unchecked']}) | {outcome['sentences']} ({outcome['chosen_by_model']}) | "
            f"{outcome['differs_from_ranking']}/{len(outcome['reports'])} | {outcome['words_per_report']:.0f} | "
            f"{outcome['seconds_per_report']['mean']:.1f} | "
            f"{outcome['seconds_per_report']['max']:.1f} | {cache} | {tokens} | "
            f"{'met' if outcome['meets_targets'] else 'missed'} |"
        )
    kinds = [kind for kind in PLANTED_KINDS if any(kind in outcome["recall"] for outcome in settings.values())]
    lines += [
        "",
        "Recall per kind (named/planted)",
        f"| setting | {' | '.join(kinds)} |",
        "|---" * (1 + len(kinds)) + "|",
    ]
    for name, outcome in settings.items():
        cells = [f"{outcome['recall'][kind]['named']}/{outcome['recall'][kind]['planted']}" for kind in kinds]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    notes = []
    for name, outcome in settings.items():
        for item in outcome["untrue"]:
            mark = " (unchecked)" if item["unchecked"] else ""
            notes.append(f"- untrue{mark}, {name}, {item['scenario']}: {item['sentence']} -- {item['reason']}")
        for item in outcome["missed"]:
            where = item["camera"] + (f"'s {item['zone']}" if item["zone"] else "")
            notes.append(f"- missed, {name}, {item['scenario']}: {item['kind']} at {where}, {item['start']}")
    lines += ["", "Untrue sentences and missed events:", *notes] if notes else ["", "No untrue sentence, none missed."]
    return "\n".join(lines)
