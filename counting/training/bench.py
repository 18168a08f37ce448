"""Parameters, FLOPs, inference speed at 1024x768 and test MAE for each architecture and precision, against a plain
fp32 eager forward of the same weights, measured side by side in one run. Medians of repeated runs; the machines
are noisy.

Trained architectures also run as exported ONNX graphs on onnxruntime, in fp32 and quantised to int8 (calibrated on
training frames); the test MAE is measured for the engine's fp32 path and for int8, on the test split of `data`.

`bench_calibration` times a whole calibration job (`counting.training.calibration.calibrate`, its k folds and the final
fine-tune) on frames of a data set's train split, with the held-out MAE before and after."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from counting.engine import CountingEngine, bf16_is_native, predict_density
from counting.images import to_input_tensor
from counting.models import ARCHITECTURES, DEFAULT_WEIGHTS, build, load_model
from counting.onnx_export import OnnxCounter, export_onnx, quantise_int8
from counting.training.calibration import CalibrationConfig, calibrate
from counting.training.datasets import AnnotatedImage, load_annotated
from counting.training.evaluate import DensityModel, evaluate_images, summarise

BENCH_SIZE = (768, 1024)  # height, width: a ShanghaiTech Part B frame


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: first calls pick kernels and allocate
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _plain_forward(model: nn.Module, rgb: np.ndarray) -> None:
    with torch.no_grad():
        model(to_input_tensor(rgb)[None])


def forward_gflops(model: nn.Module, rgb: np.ndarray) -> float:
    """Floating-point operations of one forward pass over `rgb` (a multiply-add counts two), in billions."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(to_input_tensor(rgb)[None])
    return counter.get_total_flops() / 1e9


@dataclass(frozen=True)
class Accuracy:
    """What accuracy is measured on: annotated test images, and training frames to calibrate int8 on."""

    test: list[AnnotatedImage]
    calibration: list[np.ndarray]


def _test_mae(model: DensityModel, accuracy: Accuracy | None) -> float | None:
    return None if accuracy is None else summarise(evaluate_images(model, accuracy.test, progress=False))["mae"]


def _onnx_rows(
    arch: str, model: nn.Module, rgb: np.ndarray, repeats: int, plain: float, accuracy: Accuracy | None
) -> list[dict]:
    """onnxruntime rows: the exported fp32 graph, and its int8 quantisation with the count change and test MAE."""
    rows: list[dict[str, str | float | None]] = []
    with tempfile.TemporaryDirectory() as scratch:
        fp32_path = export_onnx(model, Path(scratch) / "fp32.onnx")
        counters = {"fp32": OnnxCounter(fp32_path, torch.get_num_threads())}
        if accuracy is not None:
            int8_path = quantise_int8(fp32_path, Path(scratch) / "int8.onnx", accuracy.calibration)
            counters["int8"] = OnnxCounter(int8_path, torch.get_num_threads())
        counts = {}
        for precision, counter in counters.items():
            seconds = _median_seconds(partial(counter.density, rgb), repeats)
            counts[precision] = float(counter.density(rgb).sum())
            row = {"arch": arch, "path": "onnxruntime", "precision": precision}
            rows.append(row | {"images_per_s": 1 / seconds, "speedup": plain / seconds})
        if "int8" in counters:
            rows[-1]["count_change_pct"] = 100 * abs(counts["int8"] - counts["fp32"]) / max(counts["fp32"], 1e-6)
            rows[-1]["test_mae"] = _test_mae(counters["int8"], accuracy)
    return rows


def bench_architecture(arch: str, rgb: np.ndarray, repeats: int, accuracy: Accuracy | None = None) -> list[dict]:
    """Rows for one architecture: plain fp32, then the engine's path (channels-last, inference mode) in fp32/bf16;
    with trained weights, onnxruntime fp32 and int8 too, and test MAE where `accuracy` is given."""
    trained = arch in DEFAULT_WEIGHTS and DEFAULT_WEIGHTS[arch].exists()
    model = load_model(arch)[0] if trained else build(arch).eval()
    plain = _median_seconds(lambda: _plain_forward(model, rgb), repeats)
    fast_model = build(arch).eval()
    fast_model.load_state_dict(model.state_dict())
    fast_model = fast_model.to(memory_format=torch.channels_last)
    rows = [{"arch": arch, "path": "plain eager", "precision": "fp32", "images_per_s": 1 / plain, "speedup": 1.0}]
    counts = {}
    for precision in ("fp32", "bf16"):
        seconds = _median_seconds(partial(predict_density, fast_model, rgb, precision), repeats)
        counts[precision] = float(predict_density(fast_model, rgb, precision).sum())
        rows.append(
            {
                "arch": arch,
                "path": "engine",
                "precision": precision,
                "images_per_s": 1 / seconds,
                "speedup": plain / seconds,
            }
        )
    if trained:
        rows[-1]["count_change_pct"] = 100 * abs(counts["bf16"] - counts["fp32"]) / max(counts["fp32"], 1e-6)
        rows[1]["test_mae"] = _test_mae(CountingEngine(arch), accuracy)
        rows += _onnx_rows(arch, model, rgb, repeats, plain, accuracy)
    gflops = forward_gflops(model, rgb)
    for row in rows:
        row["weights"] = "trained" if trained else "untrained (speed only)"
        row["params"] = sum(p.numel() for p in model.parameters())
        row["gflops"] = gflops
    return rows


def run_bench(
    image: np.ndarray | None = None,
    archs: list[str] | None = None,
    repeats: int = 5,
    accuracy: Accuracy | None = None,
) -> list[dict]:
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (*BENCH_SIZE, 3), dtype=np.uint8)
    rows = []
    for arch in archs or list(ARCHITECTURES):
        rows += bench_architecture(arch, image, repeats, accuracy)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [
        f"{'arch':<14}{'params':>11}{'GFLOPs':>8}  {'path':<13}{'precision':<10}{'images/s':>9}{'x plain':>9}  "
        f"{'count change':<14}{'test MAE':>9}  weights"
    ]
    for row in rows:
        change = f"{row['count_change_pct']:.2f}%" if "count_change_pct" in row else ""
        mae = f"{row['test_mae']:.2f}" if row.get("test_mae") is not None else ""
        lines.append(
            f"{row['arch']:<14}{row['params']:>11,}{row['gflops']:>8.1f}  {row['path']:<13}{row['precision']:<10}"
            f"{row['images_per_s']:>9.2f}{row['speedup']:>9.2f}  {change:<14}{mae:>9}  {row['weights']}"
        )
    lines.append(
        "count change: bf16 against the engine's fp32, int8 against onnxruntime fp32, on the timed frame; "
        "test MAE on the data's test split; bf16 is "
        + ("native on this CPU" if bf16_is_native() else "emulated on this CPU (no AVX512-BF16 or AMX), hence slow")
    )
    return "\n".join(lines)


def bench_calibration(
    data: str | Path, frames: int = 20, config: CalibrationConfig | None = None, arch: str = "csrnet-lite"
) -> dict:
    """One calibration job of `arch`'s default weights on `frames` frames spread over `data`'s train split, timed
    whole (the tuned weights go to a temporary folder)."""
    config = config or CalibrationConfig()
    samples = load_annotated(data, "train")
    chosen = samples[:: max(1, len(samples) // frames)][:frames]
    with tempfile.TemporaryDirectory() as scratch:
        outcome = calibrate(arch, None, chosen, Path(scratch) / "tuned.pt", config)
    return {
        "arch": arch,
        "data": Path(data).name,
        "frames": outcome.frames,
        "folds": outcome.folds,
        "epochs": config.epochs,
        "crop": list(config.crop),
        "threads": torch.get_num_threads(),
        "seconds": outcome.seconds,
        "held_out_mae_before": outcome.held_out_mae_before,
        "held_out_mae_after": outcome.held_out_mae_after,
        "switched": outcome.switched,
    }


def format_calibration(row: dict) -> str:
    crop = "x".join(str(side) for side in row["crop"])
    return (
        f"calibration ({row['arch']}): {row['frames']} frames of {row['data']} train, {row['folds']} folds x "
        f"{row['epochs']} epochs, crops {crop}, {row['threads']} threads: {row['seconds']:.0f} s, held-out MAE "
        f"{row['held_out_mae_before']:.2f} -> {row['held_out_mae_after']:.2f} "
        + ("(switched: the time includes the final fine-tune on all frames)" if row["switched"] else "(kept)")
    )
