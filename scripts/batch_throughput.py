"""Frames per second counted one by one against counted in batches, side by side in one run on one device: what a
GPU worker gains from CROWDSCOPE_BATCHED_MODELS, and how far the batched maps are from the maps counted alone.

    python scripts/batch_throughput.py [--device cuda|cpu] [--frames N] [--batch 16] [--precision auto]
                                       [--csrnet-weights PATH] [--threads N]

Frames are 1280x720 (ShanghaiTech Part B test frames resized, or noise when the data set is absent: the time of a
forward pass does not depend on what the frame shows). Models: csrnet-lite with its default weights, and full CSRNet
with --csrnet-weights; on a GPU, without them, full CSRNet is timed with untrained parameters (same speed), and its
maps are compared batched against alone all the same. One by one is `CountingEngine.count` (the count_frame task's
path), batched is `count_batch` (the batched task's); both include the preprocessing and the copies to and from the
device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from counting.engine import PRECISIONS, CountingEngine, configure_threads
from counting.images import IMAGE_SUFFIXES, load_rgb
from counting.models import build, default_weights, save_weights
from counting.specs import CSRNET, CSRNET_LITE

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO.parent / "shared/data/shanghaitech/part_B/test/images"
WIDTH, HEIGHT = 1280, 720
DISTINCT_FRAMES = 16


@dataclass(frozen=True)
class Timing:
    batch: int
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds


def bench_frames(count: int, images: Path) -> tuple[list[np.ndarray], str]:
    """`count` 1280x720 frames, cycling through up to 16 distinct ones; and where they come from."""
    paths = sorted(p for p in images.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:DISTINCT_FRAMES]
    if paths:
        distinct = [cv2.resize(load_rgb(p), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for p in paths]
        source = f"{len(distinct)} frames of {images} resized to {WIDTH}x{HEIGHT}"
    else:
        noise = np.random.default_rng(0)
        distinct = [noise.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(DISTINCT_FRAMES)]
        source = f"{DISTINCT_FRAMES} frames of noise at {WIDTH}x{HEIGHT} ({images} is absent)"
    return [distinct[index % len(distinct)] for index in range(count)], source


def synchronise(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_one_by_one(engine: CountingEngine, frames: list[np.ndarray]) -> Timing:
    synchronise(engine.device)
    started = time.perf_counter()
    for rgb in frames:
        engine.count(rgb)
    synchronise(engine.device)
    return Timing(1, len(frames), time.perf_counter() - started)


def time_batched(engine: CountingEngine, frames: list[np.ndarray], batch: int) -> Timing:
    synchronise(engine.device)
    started = time.perf_counter()
    for start in range(0, len(frames), batch):
        for outcome in engine.count_batch(frames[start : start + batch]):
            if isinstance(outcome, Exception):
                raise outcome
    synchronise(engine.device)
    return Timing(batch, len(frames), time.perf_counter() - started)


def largest_difference(engine: CountingEngine, frames: list[np.ndarray]) -> float:
    """The largest difference between a frame's map counted in a batch and counted alone, over the map's peak."""
    worst = 0.0
    for rgb, batched in zip(frames, engine.count_batch(frames), strict=True):
        if isinstance(batched, Exception):
            raise batched
        alone = engine.count(rgb).density
        worst = max(worst, float(np.abs(batched.density - alone).max() / max(float(np.abs(alone).max()), 1e-12)))
    return worst


def bench_model(label: str, engine: CountingEngine, frames: list[np.ndarray], batch: int) -> list[str]:
    """The table's rows for one model, and its summary line."""
    engine.count_batch(frames[:batch])  # warm up: kernels chosen, memory allocated, for both shapes of pass
    engine.count(frames[0])
    if torch.device(engine.device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(engine.device)
    alone = time_one_by_one(engine, frames)
    batched = time_batched(engine, frames, batch)
    peak = ""
    if torch.device(engine.device).type == "cuda":
        peak = f"; peak device memory {torch.cuda.max_memory_allocated(engine.device) / 2**30:.1f} GiB"
    difference = largest_difference(engine, frames[:batch])
    rows = [
        f"{label:<26} {engine.precision:<9} {timing.batch:>5} {timing.frames:>6} {timing.seconds:>8.2f} "
        f"{timing.frames_per_second:>9.2f}"
        for timing in (alone, batched)
    ]
    ratio = batched.frames_per_second / alone.frames_per_second
    rows.append(
        f"  {label}: batch {batch} / batch 1 = {ratio:.2f}x; maps batched vs alone differ by at most "
        f"{difference:.1e} of their peak{peak}"
    )
    return rows


def engines(args: argparse.Namespace, scratch: Path) -> list[tuple[str, CountingEngine]]:
    chosen = [(CSRNET_LITE, CountingEngine(CSRNET_LITE, default_weights(CSRNET_LITE), args.precision, args.device))]
    if args.csrnet_weights:
        chosen.append((CSRNET, CountingEngine(CSRNET, args.csrnet_weights, args.precision, args.device)))
    elif torch.device(args.device).type == "cuda":
        untrained = scratch / "csrnet-untrained.pt"
        save_weights(build(CSRNET), CSRNET, untrained)
        chosen.append((f"{CSRNET} (untrained)", CountingEngine(CSRNET, untrained, args.precision, args.device)))
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, help="frames per way of counting (default: 32 on a CPU, 512 on a GPU)")
    parser.add_argument("--batch", type=int, default=16, help="frames per batch")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="as COUNTING_PRECISION")
    parser.add_argument("--csrnet-weights", type=Path, help="full CSRNet weights (else timed untrained on a GPU)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--images", type=Path, default=IMAGES, help="frames to resize to 1280x720")
    args = parser.parse_args()
    if args.batch < 2:
        parser.error("--batch must be 2 or more: it is compared with 1")
    configure_threads(args.threads)
    on_gpu = torch.device(args.device).type == "cuda"
    frames, source = bench_frames(args.frames or (512 if on_gpu else 32), args.images)
    device = torch.cuda.get_device_name(args.device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"batch throughput on {args.device} ({device}): {source}")
    if not on_gpu and not args.csrnet_weights:
        print("  full CSRNet left out: no --csrnet-weights, and untrained it is timed on a GPU only")
    print(f"{'model':<26} {'precision':<9} {'batch':>5} {'frames':>6} {'seconds':>8} {'frames/s':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for label, engine in engines(args, Path(scratch)):
            for row in bench_model(label, engine, frames, args.batch):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
