"""`python -m llm_reports bench [--json]`: SnapKV against the full cache on the local LLM."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from llm_reports.llm import LLMConfig, LocalLLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_reports")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="KV cache, prefill and decoding speed, needle accuracy")
    bench.add_argument("--model", help="a local model directory or .gguf file (default: SmolLM2-135M-Instruct)")
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--threads", type=int)
    bench.add_argument("--trials-per-depth", type=int, default=4, help="needle trials at each of the five depths")
    bench.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from llm_reports.bench import format_report, run_needle_bench

    logging.getLogger("transformers").setLevel(logging.ERROR)
    llm = LocalLLM(LLMConfig(model=args.model, device=args.device, threads=args.threads))
    result = run_needle_bench(llm, args.trials_per_depth)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
