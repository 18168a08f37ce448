"""Count-scale calibration: the factor folded into the density head scales every map exactly; fitted on a run's
training frames, it makes their total the annotated one and leaves the validation slice out; `export
--fit-count-scale` writes weights that count that way."""

import json
import shutil

import numpy as np
import pytest
import torch

from counting.cli import main
from counting.models import DEFAULT_WEIGHTS, build, load_model, save_weights
from counting.training.count_scale import fit_count_scale, fold_count_scale, frame_counts, run_training_frames
from counting.training.datasets import shanghaitech_split


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shanghaitech):
    """A run folder as `train` leaves it: five labelled Part B frames, one of them the validation slice, the
    shipped weights as its best model."""
    root = tmp_path_factory.mktemp("run")
    frames = root / "frames" / "train"
    frames.mkdir(parents=True)
    samples = shanghaitech_split(shanghaitech / "part_B", "train")[:5]
    for sample in samples:
        shutil.copy(sample.image_path, frames / sample.image_path.name)
        (frames / f"{sample.image_path.stem}.json").write_text(json.dumps(sample.points.tolist()))
    run = root / "run"
    run.mkdir()
    config = {"data": [str(frames.parent)], "val_images": [f"frames/{samples[2].image_path.name}"]}
    (run / "config.json").write_text(json.dumps(config))
    model, arch, _ = load_model("csrnet-lite", DEFAULT_WEIGHTS["csrnet-lite"])
    save_weights(model, arch, run / "best.pt", epoch=7)
    return run


@pytest.mark.parametrize("arch", ["csrnet-lite", "skynet-count"])
def test_folding_a_scale_multiplies_every_density_map_by_it(arch):
    torch.manual_seed(0)
    model = build(arch).eval()
    frames = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        before = model(frames)
        fold_count_scale(model, 1.37)
        after = model(frames)
    torch.testing.assert_close(after, 1.37 * before, rtol=1e-5, atol=1e-7)


def test_the_fit_uses_the_training_frames_and_makes_their_total_the_annotated_one(run_dir):
    training, validation = run_training_frames(run_dir)
    assert len(training) == 4 and [s.image_path.name for s in validation] == ["IMG_3.jpg"]
    model, _, _ = load_model(None, run_dir / "best.pt")
    fit = fit_count_scale(model, training)
    annotated = sum(s.count for s in training)
    assert fit.frames == 4 and fit.annotated == annotated
    assert fit.scale == pytest.approx(annotated / fit.counted)

    fold_count_scale(model, fit.scale)
    counted = frame_counts(model, training)
    assert counted.sum() == pytest.approx(annotated, rel=1e-4)
    truth = np.array([s.count for s in training])
    assert fit.mae_after == pytest.approx(np.abs(counted - truth).mean(), rel=1e-4)


def test_a_model_that_counts_nothing_gets_a_clear_error(run_dir):
    model, _, _ = load_model(None, run_dir / "best.pt")
    fold_count_scale(model, 0.0)
    with pytest.raises(ValueError, match="no scale fits"):
        fit_count_scale(model, run_training_frames(run_dir)[0])


def test_export_folds_the_fitted_scale_into_the_weights_it_writes(run_dir, tmp_path, capsys):
    out = tmp_path / "scaled.pt"
    assert main(["export", str(run_dir / "best.pt"), str(out), "--half", "--fit-count-scale"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[0])["count_scale"]
    assert report["frames"] == 4 and report["val_frames"] == 1
    assert report["val_mae_before"] >= 0 and report["val_mae_after"] >= 0

    original, _, _ = load_model(None, run_dir / "best.pt")
    scaled, _, _ = load_model(None, out)
    frames = run_training_frames(run_dir)[1]
    ratio = frame_counts(scaled, frames) / frame_counts(original, frames)
    np.testing.assert_allclose(ratio, report["scale"], rtol=2e-3)  # float16 weights
    assert torch.load(out, weights_only=True)["meta"]["count_scale"] == {"scale": report["scale"], "frames": 4}


def test_export_refuses_to_fit_outside_a_run_folder(tmp_path, capsys):
    weights = tmp_path / "weights.pt"
    shutil.copy(DEFAULT_WEIGHTS["csrnet-lite"], weights)
    assert main(["export", str(weights), str(tmp_path / "out.pt"), "--fit-count-scale"]) == 2
    assert "holds no config.json" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
