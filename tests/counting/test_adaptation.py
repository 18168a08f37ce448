import json
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from counting import adaptation
from counting.adaptation import (
    AdaptationError,
    AdaptationRule,
    adapt,
    norm_layers,
    novelty,
    own_statistics,
    recording,
    reference_statistics,
    references_path,
    save_references,
    spread_over_hours,
)
from counting.cli import main
from counting.engine import frame_density
from counting.images import normalise
from counting.models import WEIGHTS_DIR, build, load_model, read_checkpoint, save_weights
from counting.progress import WorkProgress
from counting.training import adaptation_bench
from counting.training.datasets import AnnotatedImage
from tests.counting.part_b_crops import write_part_b_crops

SHTB = WEIGHTS_DIR / "csrnet-lite-shtb.pt"
# Every rule in these tests adapts from few, small frames.
FEW = AdaptationRule(
    min_frames=4, max_frames=8, counted_frames=4, strength=0.5, novelty_threshold=0.0, layers=0, min_count_change=0.0
)


def dim(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The same scene through a worse camera: darker, with less contrast and a blue cast."""
    shifted = rgb.astype(np.float32) * factor + np.array([0, 10, 40], np.float32)
    return np.clip(shifted, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def part_b_crops(tmp_path_factory, shanghaitech):
    folder = write_part_b_crops(shanghaitech, tmp_path_factory.mktemp("crops") / "train", frames=8)
    return sorted(folder.glob("*.jpg"))


@pytest.fixture(scope="module")
def dim_camera(tmp_path_factory, part_b_crops):
    """Eight Part B crops as a dim, blue-cast camera would see them: a camera the default weights never saw."""
    folder = tmp_path_factory.mktemp("dim-camera")
    for path in part_b_crops:
        Image.fromarray(dim(np.asarray(Image.open(path).convert("RGB")), 0.45)).save(folder / path.name, quality=95)
    return sorted(folder.glob("*.jpg"))


def test_recording_measures_inputs_and_restores_the_weights_statistics():
    model = build("csrnet-lite").eval()
    own = own_statistics(model)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    plain = frame_density(model, rgb)
    with recording(model, each_frame_its_own=True) as accumulators:
        adapted = frame_density(model, rgb)
    after = own_statistics(model)
    assert all(np.array_equal(own[name][0], after[name][0]) for name in own)
    assert np.array_equal(frame_density(model, rgb), plain)
    assert not np.allclose(adapted, plain)  # inside, each layer normalised by the frame's own statistics
    # The first batch norm's input is the first conv's output over the frame: its statistics, exactly.
    first_name, first = next(iter(norm_layers(model).items()))
    conv = model.frontend[0]
    with torch.no_grad():
        x = conv(torch.from_numpy(normalise(rgb))[None]).double()
    mean, variance = accumulators[first_name].result()
    np.testing.assert_allclose(mean, x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, x.var(dim=(0, 2, 3), unbiased=False).numpy(), rtol=1e-3, atol=1e-5)
    assert first.running_mean.shape == (len(mean),)


def test_novelty_is_zero_for_the_same_statistics_and_grows_with_the_shift():
    reference = {"a": (np.zeros(4), np.ones(4)), "b": (np.ones(2), np.full(2, 4.0))}
    assert novelty(reference, reference) == 0.0
    near = {"a": (np.full(4, 0.5), np.ones(4)), "b": reference["b"]}
    far = {"a": (np.full(4, 2.0), np.ones(4)), "b": reference["b"]}
    assert novelty(near, reference) == pytest.approx(0.125, rel=1e-4)  # (0.25 / 1 + 0 over layer b) / 2
    assert novelty(far, reference) > novelty(near, reference)
    with pytest.raises(AdaptationError, match="other layers"):
        novelty({"a": reference["a"]}, reference)


def test_the_rule_adapts_only_past_its_novelty_threshold_and_switches_only_on_a_material_change():
    rule = AdaptationRule(novelty_threshold=0.2, min_count_change=0.15)
    assert not rule.is_novel(0.1) and not rule.is_novel(0.2) and rule.is_novel(0.3)
    assert rule.worth_switching(20.0, 23.0) and rule.worth_switching(20.0, 17.0)
    assert not rule.worth_switching(20.0, 22.9)
    # Below one person a frame, the change is judged against one person.
    assert not rule.worth_switching(0.2, 0.3) and rule.worth_switching(0.2, 0.4)


def test_a_change_too_small_keeps_the_weights_and_says_so(dim_camera, tmp_path):
    out = tmp_path / "adapted.pt"
    outcome = adapt("csrnet-lite", None, dim_camera, out, replace(FEW, min_count_change=100.0))
    assert not outcome.adapted and outcome.weights is None and not out.exists()
    assert outcome.mean_count_after != outcome.mean_count_before  # measured, then judged too small
    assert "too little to switch" in outcome.reason


def test_a_novel_camera_is_adapted_with_its_statistics_mixed_in(dim_camera, tmp_path):
    out = tmp_path / "adapted.pt"
    progress = []
    outcome = adapt("csrnet-lite", None, dim_camera, out, FEW, progress=lambda f, m: progress.append(f))
    assert outcome.adapted and outcome.weights == out and outcome.strength == 0.5
    assert outcome.frames == 8 and outcome.frame_names == [path.name for path in dim_camera]
    assert outcome.nearest_reference in {"weights", "part_A", "part_B", "scut-head-a", "scut-head-b", "beijing-brt"}
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert f"mean count {outcome.mean_count_before:.1f} -> {outcome.mean_count_after:.1f}" in outcome.reason
    base, _, _ = load_model("csrnet-lite")
    adapted, arch, _ = load_model(None, out)
    assert arch == "csrnet-lite"
    meta = read_checkpoint(out)["meta"]["adaptation"]
    assert meta["rule"] == outcome.rule and meta["frames"] == outcome.frame_names
    assert meta["strength"] == 0.5 and meta["novelty"] == pytest.approx(outcome.novelty)
    # Only batch-norm statistics change, and each is between the weights' own and the camera's.
    for (name, a), (_, b) in zip(base.state_dict().items(), adapted.state_dict().items(), strict=True):
        if "running" in name:
            assert not torch.allclose(a, b)
        else:
            assert torch.equal(a, b)
    # The counts after are those of the written weights.
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in dim_camera[::2]]
    after = np.mean([frame_density(adapted, rgb, "auto").sum(dtype=np.float64) for rgb in frames])
    assert after == pytest.approx(outcome.mean_count_after, rel=1e-4)


def test_the_first_layer_takes_the_cameras_statistics_mixed_by_the_strength(dim_camera, tmp_path):
    """The first batch norm sees the first conv's output, which no adaptation changes: its adapted statistics are
    exactly (1 - s) times the weights' own plus s times that output's over every frame."""
    strength = 0.7
    rule = replace(FEW, strength=strength, max_frames=8)
    outcome = adapt("csrnet-lite", None, dim_camera, tmp_path / "a.pt", rule, "fp32")
    base, _, _ = load_model("csrnet-lite")
    adapted, _, _ = load_model(None, outcome.weights)
    with torch.no_grad():
        outputs = [
            base.frontend[0](torch.from_numpy(normalise(np.asarray(Image.open(p).convert("RGB"))))[None]).double()
            for p in dim_camera
        ]
    pixels = torch.cat([o.permute(0, 2, 3, 1).reshape(-1, o.shape[1]) for o in outputs])
    mean, variance = pixels.mean(dim=0), pixels.var(dim=0, unbiased=False)
    first = base.frontend[1]
    expected_mean = (1 - strength) * first.running_mean.double() + strength * mean
    expected_variance = (1 - strength) * first.running_var.double() + strength * variance
    torch.testing.assert_close(adapted.frontend[1].running_mean.double(), expected_mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(adapted.frontend[1].running_var.double(), expected_variance, rtol=1e-3, atol=1e-4)


def test_a_camera_within_the_threshold_keeps_its_weights_and_nothing_is_written(dim_camera, tmp_path):
    out = tmp_path / "adapted.pt"
    outcome = adapt("csrnet-lite", None, dim_camera, out, replace(FEW, novelty_threshold=1e9))
    assert not outcome.adapted and outcome.weights is None and outcome.strength == 0.0
    assert outcome.mean_count_after == outcome.mean_count_before
    assert "keeps them" in outcome.reason
    assert not out.exists()


def test_references_beside_the_weights_are_read_and_the_nearest_one_decides(dim_camera, tmp_path):
    model, _, _ = load_model("csrnet-lite")
    weights = tmp_path / "w.pt"
    save_weights(model, "csrnet-lite", weights)
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in dim_camera]
    camera = adaptation.set_references(model, {"dim": dim_camera})["dim"]
    save_references({"dim-set": camera, "other": own_statistics(model)}, references_path(weights))
    references = reference_statistics(model, weights)
    assert set(references) == {"weights", "dim-set", "other"}
    assert novelty(camera, references["dim-set"]) == pytest.approx(0.0, abs=1e-9)
    # A camera exactly like a set the weights trained on is not novel: it keeps the weights.
    outcome = adapt(
        None,
        weights,
        dim_camera,
        tmp_path / "out.pt",
        replace(FEW, counted_frames=8, max_frames=8, novelty_threshold=1e-3),
    )
    assert outcome.nearest_reference == "dim-set" and outcome.novelty < 1e-4
    assert not outcome.adapted
    assert len(frames) == 8


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder: [folder / f"f{i}.jpg" for i in range(3)], "too few frames: 3, at least 4"),
        (lambda folder: [*(folder / f"f{i}.jpg" for i in range(4)), folder / "broken.jpg"], "broken.jpg"),
        (lambda folder: [*(folder / f"f{i}.jpg" for i in range(4)), folder / "wide.jpg"], "mixed sizes"),
    ],
)
def test_bad_frames_are_refused_with_what_is_missing_and_nothing_is_written(tmp_path, make, message):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / f"f{i}.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(tmp_path / "wide.jpg")
    out = tmp_path / "out.pt"
    with pytest.raises(AdaptationError, match=message):
        adapt("csrnet-lite", None, make(tmp_path), out, FEW)
    assert not out.exists()


def test_a_model_without_batch_norm_is_refused():
    with pytest.raises(AdaptationError, match="no batch-norm layers"):
        norm_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


def test_every_architecture_with_batch_norm_adapts(dim_camera, tmp_path):
    model = build("skynet-count").eval()
    weights = tmp_path / "skynet.pt"
    save_weights(model, "skynet-count", weights)
    outcome = adapt(None, weights, dim_camera, tmp_path / "out.pt", FEW)
    assert outcome.adapted and load_model(None, outcome.weights)[1] == "skynet-count"


def test_frames_are_spread_over_the_hours_of_the_day():
    start = datetime(2026, 12, 1)
    # A busy day camera: 200 frames between 9:00 and 11:00, and 10 at night.
    times = [start + timedelta(hours=9, seconds=36 * i) for i in range(200)]
    times += [start + timedelta(hours=23, minutes=5 * i) for i in range(10)]
    chosen = spread_over_hours(times, 20)
    assert len(chosen) == 20 and chosen == sorted(set(chosen))
    hours = [times[i].hour for i in chosen]
    assert hours.count(23) >= 6 and hours.count(9) >= 6 and hours.count(10) >= 6
    # Within an hour, spread over it rather than its first frames.
    nine = [times[i] for i in chosen if times[i].hour == 9]
    assert max(nine) - min(nine) > timedelta(minutes=30)
    assert spread_over_hours(times, 500) == list(range(210))
    assert spread_over_hours([], 5) == []


def test_the_cli_adapts_a_folder_and_count_takes_the_weights(dim_camera, tmp_path, capsys):
    out = tmp_path / "cam.pt"
    folder = tmp_path / "frames"
    folder.mkdir()
    # The rule's 20 frames at least: the dim camera's eight, mirrored, and shifted.
    for index, path in enumerate(dim_camera * 3):
        rgb = np.asarray(Image.open(path))
        rgb = np.roll(rgb[:, ::-1] if index % 2 else rgb, 8 * index, axis=1)
        Image.fromarray(rgb).save(folder / f"{index:02d}.jpg")
    assert main(["adapt", "--frames", str(folder), "--out", str(out), "--novelty-threshold", "0", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) == {"frames", "rule", "mean_count_before", "mean_count_after", "out"}
    assert record["frames"] == 24 and record["out"] == str(out) and out.exists()
    assert record["rule"]["strength_applied"] == record["rule"]["strength"] > 0
    assert main(["count", "--weights", str(out), "--json", str(dim_camera[0])]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == str(out)


def test_the_cli_says_what_is_missing(tmp_path, capsys):
    assert main(["adapt", "--frames", str(tmp_path), "--out", str(tmp_path / "o.pt")]) == 2
    assert "too few frames: 0" in capsys.readouterr().err
    assert main(["adapt", "--frames", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o.pt")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_only_the_rules_first_layers_adapt_and_their_statistics_are_those_of_a_full_pass(dim_camera, tmp_path):
    outcome = adapt("csrnet-lite", None, dim_camera, tmp_path / "a.pt", replace(FEW, layers=2))
    base, _, _ = load_model("csrnet-lite")
    adapted, _, _ = load_model(None, outcome.weights)
    names = list(norm_layers(base))
    changed = [
        name
        for name in names
        if not torch.equal(norm_layers(base)[name].running_mean, norm_layers(adapted)[name].running_mean)
    ]
    assert changed == names[:2]
    # The pass that stops after the second layer measures what a whole pass measures there.
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in dim_camera]
    early = adaptation.camera_statistics(base, frames, "fp32", "cpu", WorkProgress(8, None), layers=2)
    whole = adaptation.camera_statistics(base, frames, "fp32", "cpu", WorkProgress(8, None))
    assert list(early) == names[:2]
    for name in early:
        np.testing.assert_allclose(early[name][0], whole[name][0], rtol=1e-6)
        np.testing.assert_allclose(early[name][1], whole[name][1], rtol=1e-6)


def test_the_bench_applies_the_rule_as_the_library_does_and_tabulates_it():
    rule = AdaptationRule(novelty_threshold=0.05, strength=0.5, min_count_change=0.15)
    truth = [10.0, 20.0, 30.0]

    def result(camera, trained, novelty, adapted_mean, adapted_counts):
        return {
            "weights": "w.pt",
            "camera": camera,
            "trained": trained,
            "frames": 3,
            "mean_count": 20.0,
            "novelty": novelty,
            "nearest_reference": "weights",
            "counts": {"0": [5.0, 10.0, 15.0], "0.5": adapted_counts},
            "decision_mean": {"0": 10.0, "0.5": adapted_mean},
            "annotated": truth,
        }

    known = result("known", True, 0.01, 20.0, truth)  # not novel: kept, however much better it would count
    small = result("small move", False, 0.2, 11.0, truth)  # novel, but the count moved 10%: kept
    adapted = result("adapted", False, 0.2, 19.0, [9.0, 21.0, 30.0])
    assert [adaptation_bench.rule_decision(r, rule) for r in (known, small, adapted)] == [0.0, 0.0, 0.5]
    row = adaptation_bench.summary_rows(adapted, rule)
    assert (row["mae_default"], row["mae_adapted"], row["change"]) == (10.0, 0.67, -9.33)
    assert row["count_change"] == 0.9 and row["kind"] == "unseen"
    table = adaptation_bench.format_table([known, small, adapted], rule, [0.5])
    assert "| adapted | unseen | 3 | 20.0 | 0.2 (weights) | +90% | yes | 10.0 / -10.0 | 0.67 / +0.0 |" in table
    assert "unseen: 2 cameras, median MAE 10.00 -> 5.33 (-47%); worse by more than the paired SE: 0" in table
    assert "trained: 1 cameras, median MAE 10.00 -> 10.00 (+0%)" in table


def test_frames_of_one_viewpoint_are_grouped_into_one_scene(tmp_path):
    rng = np.random.default_rng(0)
    backgrounds = [rng.integers(0, 256, (24, 32), dtype=np.uint8) for _ in range(2)]
    samples = {"train": [], "test": []}
    for split, count in (("train", 90), ("test", 24)):
        for index in range(count):
            scene = index % 2
            grey = np.clip(backgrounds[scene].astype(int) + rng.integers(-20, 20, (24, 32)), 0, 255)
            frame = np.repeat(np.kron(grey, np.ones((8, 8))).astype(np.uint8)[:, :, None], 3, axis=2)
            path = tmp_path / f"{split}-{scene}-{index:03d}.png"
            Image.fromarray(frame).save(path)
            samples[split].append(AnnotatedImage(path, np.zeros((0, 2))))
    groups = adaptation_bench.scenes(samples["train"], samples["test"])
    assert [(len(train), len(test)) for train, test in groups] == [(45, 12), (45, 12)]
    for train, test in groups:
        assert len({sample.image_path.name.split("-")[1] for sample in train + test}) == 1
