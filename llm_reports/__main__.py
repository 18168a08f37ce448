"""`python -m llm_reports write HISTORY.json [--json]`: a report from a history file;
`python -m llm_reports eval [--json]`: the report benchmark on planted events;
`python -m llm_reports bench [--json]`: SnapKV against the full cache on the local LLM."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from llm_reports.llm import LLMConfig, LocalLLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_reports")
    commands = parser.add_subparsers(dest="command", required=True)

    write = commands.add_parser("write", help="write the report of a JSON history file (docs/history-file.md)")
    write.add_argument("history", help="the history file")
    write.add_argument("--no-model", action="store_true", help="let the code's ranking choose the facts")
    write.add_argument("--snapkv-budget", type=int, default=1024, help="kept prompt tokens; 0: the full cache")
    write.add_argument("--json", action="store_true", help="the narrative, its sentences, the facts and figures")

    evaluate = commands.add_parser("eval", help="reports of histories with planted events: recall, untrue sentences")
    evaluate.add_argument("--no-model", action="store_true", help="only the code's ranking, without the LLM")
    evaluate.add_argument("--json", action="store_true")

    bench = commands.add_parser("bench", help="KV cache, prefill and decoding speed, needle accuracy")
    bench.add_argument("--trials-per-depth", type=int, default=4, help="needle trials at each of the five depths")
    bench.add_argument("--json", action="store_true")

    for command in (write, evaluate, bench):
        command.add_argument("--model", help="a local model directory or .gguf file (default: SmolLM2-135M-Instruct)")
        command.add_argument("--device", default="cpu")
        command.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    def load_llm() -> LocalLLM:
        return LocalLLM(LLMConfig(model=args.model, device=args.device, threads=args.threads))

    if args.command == "write":
        return _write(args, load_llm)
    if args.command == "eval":
        from llm_reports.evaluation.run import format_eval, run_eval

        result = run_eval(None if args.no_model else load_llm())
        print(json.dumps(result, indent=2) if args.json else format_eval(result))
        return 0

    from llm_reports.bench import format_report, run_needle_bench

    result = run_needle_bench(load_llm(), args.trials_per_depth)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def _write(args: argparse.Namespace, load_llm: Callable[[], LocalLLM]) -> int:
    from llm_reports.history_file import HistoryFileError, read_history_file
    from llm_reports.report import ReportSettings, write_report
    from llm_reports.snapkv import SnapKVConfig

    try:
        history = read_history_file(args.history)
    except HistoryFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = ReportSettings(snapkv=SnapKVConfig(budget=args.snapkv_budget) if args.snapkv_budget else None)
    written = write_report(None if args.no_model else load_llm(), history, settings)
    if not args.json:
        print(written.text)
        return 0
    by_id = {event.id: event for event in written.events}
    print(
        json.dumps(
            {
                "narrative": written.text,
                "sentences": [
                    {
                        "text": told.text,
                        "fact": by_id[told.fact_id].as_dict(),
                        "chosen_by_model": told.chosen_by_model,
                    }
                    for told in written.sentences
                ],
                "model": written.model,
                "model_reply": written.model_reply,
                "events": [event.as_dict() for event in written.events],
                "facts": written.facts.as_dict(),
                "compression": {
                    "prompt_tokens": written.prompt_tokens,
                    "kept_tokens": written.kept_tokens,
                    "kv_cache_mb": round(written.kv_cache_mb, 2),
                    "prefill_seconds": round(written.prefill_seconds, 2),
                    "decode_tokens_per_second": round(written.decode_tokens_per_second, 1),
                },
                "seconds": round(written.seconds, 2),
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
