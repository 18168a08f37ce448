"""`python -m edge`: run the gateway agent."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from edge.agent import MODES, Agent
from edge.counters import load_counter
from edge.outbox import Outbox
from edge.sources import FolderSource, SnapshotSource, Source, SourceError, StreamSource
from edge.weights import DEFAULT_REFRESH_MIN, WeightsFetcher

TOKEN_VARIABLE = "CROWDSCOPE_GATEWAY_TOKEN"
OUTBOX_FILE = "outbox.sqlite3"
WEIGHTS_FOLDER = "weights"


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def edge_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m edge",
        description="CrowdScope gateway agent: count a camera's frames here and send the results to the server",
    )
    root.add_argument("--server", required=True, help="the CrowdScope server, e.g. https://crowdscope.example")
    root.add_argument("--token", help=f"the gateway's API token (default: ${TOKEN_VARIABLE}, which keeps it out of ps)")
    root.add_argument("--camera", type=int, required=True, help="the camera's id on the server")
    source = root.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", help="a folder the camera writes image files into")
    source.add_argument("--snapshot-url", help="an HTTP URL that answers the camera's current frame as an image")
    source.add_argument("--stream", help="an RTSP URL, or any stream or video file OpenCV opens")
    root.add_argument("--interval", type=positive_float, default=5.0, help="seconds between frames (default 5)")
    root.add_argument(
        "--mode",
        choices=MODES,
        default="privacy",
        help="privacy: count here, send the count and density map, never the frame (default); full: upload frames",
    )
    root.add_argument("--model", help="an exported .onnx model or .pt weights (default: our trained SkyNet-Count)")
    root.add_argument(
        "--weights-refresh-min",
        type=non_negative_float,
        default=DEFAULT_REFRESH_MIN,
        help="privacy mode: fetch the camera's calibrated weights (ONNX) from the server at start and then every N "
        f"minutes, counting with them once they arrive (default {DEFAULT_REFRESH_MIN:g}; 0: never, own model only)",
    )
    root.add_argument("--threads", type=int, help="CPU threads for counting (default: all)")
    root.add_argument("--state-dir", default="edge-state", help="where the on-disk queue lives (default edge-state)")
    root.add_argument("--max-queue-mb", type=positive_float, default=1024, help="queue size before the oldest go")
    root.add_argument("--health-host", default="127.0.0.1")
    root.add_argument("--health-port", type=int, default=8765, help="GET /health here (0: no health server)")
    root.add_argument("--log-level", default="INFO")
    return root


def main(argv: list[str] | None = None) -> int:
    args = edge_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        print(f"error: give the gateway's token with --token or ${TOKEN_VARIABLE}", file=sys.stderr)
        return 2
    outbox = Outbox(Path(args.state_dir) / OUTBOX_FILE, max_bytes=int(args.max_queue_mb * 1024 * 1024))
    source: Source
    try:
        if args.folder:
            source = FolderSource(args.folder, outbox, args.interval)
        elif args.snapshot_url:
            source = SnapshotSource(args.snapshot_url, args.interval)
        else:
            source = StreamSource(args.stream, args.interval)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counter = load_counter(args.model, args.threads) if args.mode == "privacy" else None
    weights = None
    if args.mode == "privacy" and args.weights_refresh_min > 0:
        weights = WeightsFetcher(args.server, token, args.camera, Path(args.state_dir) / WEIGHTS_FOLDER, args.threads)
    agent = Agent(
        args.server, token, args.camera, source, args.mode, outbox, counter, weights, args.weights_refresh_min * 60
    )
    if args.health_port:
        agent.serve_health(args.health_host, args.health_port)
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: agent.stop.set())
    logging.getLogger(__name__).info(
        "gateway agent for camera %d, %s mode, sending to %s", args.camera, args.mode, args.server
    )
    agent.run()
    return 0
