"""The bench: its FLOP count (a multiply-add counts two; SkyNet-Count needs a fraction of compact CSRNet's), and speed
beside test MAE in one table, with no accuracy figure for weights we do not have."""

import json

import cv2
import numpy as np
import pytest
from torch import nn

from counting.engine import CountingEngine
from counting.models import build
from counting.onnx_export import calibration_frames
from counting.training.bench import (
    Accuracy,
    bench_calibration,
    format_calibration,
    format_table,
    forward_gflops,
    run_bench,
)
from counting.training.calibration import CalibrationConfig
from counting.training.datasets import load_annotated
from counting.training.evaluate import evaluate_images, summarise


def test_a_pointwise_conv_costs_two_flops_per_multiply_add():
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert forward_gflops(nn.Conv2d(3, 4, kernel_size=1, bias=False), rgb) == pytest.approx(2 * 3 * 4 * 64 / 1e9)


def test_skynet_count_costs_under_half_of_compact_csrnet():
    rgb = np.zeros((96, 128, 3), np.uint8)
    assert forward_gflops(build("skynet-count"), rgb) < 0.5 * forward_gflops(build("csrnet-lite"), rgb)


def test_the_bench_puts_speed_and_test_mae_side_by_side(shanghaitech):
    data = shanghaitech / "part_B"
    test = load_annotated(data, "test")[:2]
    rows = run_bench(archs=["csrnet-lite", "csrnet"], repeats=1, accuracy=Accuracy(test, calibration_frames(data, 2)))
    by_path = {(row["arch"], row["path"], row["precision"]): row for row in rows}
    engine = by_path["csrnet-lite", "engine", "fp32"]
    expected = summarise(evaluate_images(CountingEngine("csrnet-lite"), test, progress=False))["mae"]
    assert engine["test_mae"] == pytest.approx(expected)
    assert by_path["csrnet-lite", "onnxruntime", "int8"]["test_mae"] > 0
    assert {"test_mae", "count_change_pct"} <= set(by_path["csrnet-lite", "onnxruntime", "int8"])
    # Full CSRNet has no trained weights here: speed only, and no accuracy figure is made up for it.
    assert all(row.get("test_mae") is None for row in rows if row["arch"] == "csrnet")
    assert not [row for row in rows if row["arch"] == "csrnet" and row["path"] == "onnxruntime"]
    table = format_table(rows)
    assert "test MAE" in table and f"{engine['test_mae']:.2f}" in table and "untrained (speed only)" in table


def test_the_bench_times_a_calibration_job_and_prints_its_held_out_error(shanghaitech, tmp_path):
    folder = tmp_path / "camera" / "train"
    folder.mkdir(parents=True)
    for sample in load_annotated(shanghaitech / "part_B", "train")[:8]:
        image = cv2.imread(str(sample.image_path))[288:480, 384:640]
        cv2.imwrite(str(folder / sample.image_path.name), image)
        points = sample.points - np.array([384, 288])
        inside = (points >= 0).all(axis=1) & (points[:, 0] < 256) & (points[:, 1] < 192)
        (folder / f"{sample.image_path.stem}.json").write_text(json.dumps(points[inside].tolist()))
    config = CalibrationConfig(epochs=1, crop=(128, 128), batch_size=2, warmup_epochs=0)
    row = bench_calibration(folder.parent, frames=6, config=config)
    assert (row["data"], row["frames"], row["folds"], row["epochs"], row["crop"]) == ("camera", 6, 3, 1, [128, 128])
    assert row["seconds"] > 0 and row["held_out_mae_before"] > 0
    assert row["switched"] == (row["held_out_mae_after"] < row["held_out_mae_before"])
    line = format_calibration(row)
    assert line.startswith("calibration (csrnet-lite): 6 frames of camera train, 3 folds x 1 epochs, crops 128x128")
    assert f"{row['seconds']:.0f} s" in line
    assert f"held-out MAE {row['held_out_mae_before']:.2f} -> {row['held_out_mae_after']:.2f}" in line
