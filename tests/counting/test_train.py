import json
import shutil
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from counting.cli import main
from counting.images import load_rgb, to_input_tensor
from counting.models import build, density_head, load_model
from counting.training.config import TrainConfig
from counting.training.datasets import Augmentation, CrowdCrops, GroundTruthCache, load_annotated
from counting.training.train import balanced_sampler, optimizer_groups, run_frames, selection_key, train
from tests.counting.part_b_crops import write_part_b_crops


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory, shanghaitech):
    """Five Part B crops (`write_part_b_crops`) as an operator's labelled folder."""
    return write_part_b_crops(shanghaitech, tmp_path_factory.mktemp("labelled") / "train", frames=5).parent


def _config(data, out, epochs, arch="csrnet-lite"):
    return TrainConfig(
        arch=arch,
        data=[str(data)],
        out=str(out),
        epochs=epochs,
        batch_size=2,
        crop=(192, 256),
        lr=3e-3,
        scale_range=(1.0, 1.0),
        warmup_epochs=1,
        val_fraction=0.2,
        threads=2,
    )


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("arch", ["csrnet-lite", "skynet-count"])
def test_a_short_run_lowers_the_loss_and_keeps_the_best_model(small_folder, tmp_path, arch):
    best = train(_config(small_folder, tmp_path / "run", epochs=12, arch=arch))
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert np.isfinite(best["val_mae"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(config["val_images"]) == 1
    _, loaded_arch, _ = load_model(None, tmp_path / "run" / "best.pt")
    assert loaded_arch == arch


def test_a_short_run_with_the_bayesian_loss_lowers_it(small_folder, tmp_path):
    config = replace(_config(small_folder, tmp_path / "run", epochs=12), loss="bayesian")
    best = train(config)
    losses = _losses(tmp_path / "run")
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert np.isfinite(best["val_mae"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["loss"] == "bayesian"


def test_an_unknown_loss_is_refused_before_anything_is_written(small_folder, tmp_path):
    with pytest.raises(ValueError, match="unknown loss 'bayes'"):
        train(replace(_config(small_folder, tmp_path / "run", epochs=1), loss="bayes"))
    assert not (tmp_path / "run").exists()


def test_resuming_continues_where_the_run_stopped(small_folder, tmp_path):
    train(_config(small_folder, tmp_path / "straight", epochs=4))
    train(_config(small_folder, tmp_path / "resumed", epochs=4), stop_after_epochs=2)
    assert len(_losses(tmp_path / "resumed")) == 2
    train(_config(small_folder, tmp_path / "resumed", epochs=4), resume=True)
    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert len(resumed) == 4
    np.testing.assert_allclose(resumed, straight, rtol=1e-4)


def test_a_fresh_run_never_overwrites_an_existing_one(small_folder, tmp_path):
    train(_config(small_folder, tmp_path / "run", epochs=2), stop_after_epochs=1)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(small_folder, tmp_path / "run", epochs=2))


def test_a_frozen_batch_norm_phase_starts_from_given_weights_and_keeps_its_statistics(small_folder, tmp_path):
    train(_config(small_folder, tmp_path / "first", epochs=2))
    start = torch.load(tmp_path / "first" / "best.pt", weights_only=True)["state_dict"]
    config = replace(
        _config(small_folder, tmp_path / "frozen", epochs=2),
        init_weights=str(tmp_path / "first" / "best.pt"),
        freeze_batch_norm=True,
    )
    train(config, stop_after_epochs=1)
    after_one = torch.load(tmp_path / "frozen" / "last.pt", weights_only=True)["model"]
    train(config, resume=True)
    after_two = torch.load(tmp_path / "frozen" / "last.pt", weights_only=True)["model"]
    statistics = [key for key in after_two if "running_" in key]
    assert statistics
    for key in statistics:
        assert torch.equal(after_one[key], after_two[key]), key
    # The weights did train, starting from the first run's (not from a fresh initialisation).
    assert not torch.equal(after_one["output_layer.weight"], after_two["output_layer.weight"])
    assert (after_one["frontend.0.weight"] - start["frontend.0.weight"].float()).abs().max() < 0.05


def test_a_frozen_phase_can_keep_the_starting_weights_statistics(small_folder, tmp_path):
    train(_config(small_folder, tmp_path / "first", epochs=1))
    saved = torch.load(tmp_path / "first" / "best.pt", weights_only=True)
    # The run's own statistics are what an estimate on these frames gives again: shift them so the two differ.
    start = {key: value + 0.1 if "running_mean" in key else value for key, value in saved["state_dict"].items()}
    torch.save({**saved, "state_dict": start}, tmp_path / "start.pt")
    frozen = replace(
        _config(small_folder, tmp_path / "kept", epochs=1),
        init_weights=str(tmp_path / "start.pt"),
        freeze_batch_norm=True,
        keep_batch_norm=True,
    )
    train(frozen)
    kept = torch.load(tmp_path / "kept" / "last.pt", weights_only=True)["model"]
    train(replace(frozen, out=str(tmp_path / "estimated"), keep_batch_norm=False))
    estimated = torch.load(tmp_path / "estimated" / "last.pt", weights_only=True)["model"]
    statistics = [key for key in kept if "running_" in key]
    assert all(torch.equal(kept[key], start[key].float()) for key in statistics)
    assert not all(torch.equal(estimated[key], start[key].float()) for key in statistics)
    with pytest.raises(ValueError, match="keep_batch_norm needs"):
        replace(frozen, freeze_batch_norm=False)


def test_weight_averaging_is_the_mean_of_each_epochs_ema_weights_across_a_resume(small_folder, tmp_path):
    config = replace(_config(small_folder, tmp_path / "run", epochs=3), swa_start_epoch=2)
    train(config, stop_after_epochs=2)
    after_two = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["ema"]
    averaged_two = torch.load(tmp_path / "run" / "swa.pt", weights_only=True)["state_dict"]
    train(config, resume=True)
    after_three = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["ema"]
    averaged = torch.load(tmp_path / "run" / "swa.pt", weights_only=True)
    assert averaged["meta"]["epoch"] == 3
    for key, value in averaged_two.items():
        if "running_" not in key and "num_batches" not in key:
            torch.testing.assert_close(value, after_two[key])
            torch.testing.assert_close(averaged["state_dict"][key], (after_two[key] + after_three[key]) / 2)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "swa_val_mae" not in metrics[0]
    assert all(np.isfinite(m["swa_val_mae"]) for m in metrics[1:])


@pytest.mark.parametrize("arch", ["csrnet-lite", "skynet-count"])
def test_only_the_density_head_gets_the_scaled_learning_rate(tmp_path, arch):
    model = build(arch)
    config = replace(_config(tmp_path, tmp_path / "run", epochs=1, arch=arch), head_lr_scale=0.01)
    groups = optimizer_groups(model, config)
    scaled = [group for group in groups if group["lr_scale"] != 1.0]
    assert len(scaled) == 1
    assert scaled[0]["lr_scale"] == 0.01
    assert [id(p) for p in scaled[0]["params"]] == [id(p) for p in density_head(model).parameters()]
    assert sorted(id(p) for group in groups for p in group["params"]) == sorted(id(p) for p in model.parameters())


def test_the_training_loop_applies_the_heads_rate(small_folder, tmp_path):
    config = replace(_config(small_folder, tmp_path / "run", epochs=4), head_lr_scale=0.01)
    train(config, stop_after_epochs=2)
    groups = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    body_lr, head_lr = groups[0]["lr"], groups[-1]["lr"]
    assert body_lr > 0
    assert head_lr == pytest.approx(0.01 * body_lr)


def test_batch_norm_is_calibrated_on_frames_as_inference_sees_them(small_folder, tmp_path):
    # Augmentation that would scale and flip every training crop: calibration frames must still be the frames.
    samples = load_annotated(small_folder, "train")
    training = CrowdCrops(samples, Augmentation((192, 256), (0.5, 2.0)), GroundTruthCache(tmp_path / "cache"), seed=0)
    frames = training.unaugmented()
    for index, sample in enumerate(samples):
        torch.testing.assert_close(frames[index][0], to_input_tensor(load_rgb(sample.image_path)))
        assert frames.image(index) is training.image(index)  # decoded once, held once


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory, small_folder):
    """Two data sets of different sizes and names: the five Part B crops, and two of them again, as another set."""
    root = tmp_path_factory.mktemp("sets")
    big, small = root / "street" / "train", root / "station" / "train"
    shutil.copytree(small_folder / "train", big)
    small.mkdir(parents=True)
    for path in sorted((small_folder / "train").iterdir())[:4]:  # two images with their annotations
        shutil.copy(path, small / path.name)
    return [str(big.parent), str(small.parent)]


def test_run_frames_slices_validation_from_every_set_and_caps_it(two_sets):
    training, validation = run_frames(two_sets, 0.5, seed=0)
    assert sorted(validation) == ["station", "street"]
    assert len(validation["street"]) == 2 and len(validation["station"]) == 1
    assert len(training) == 3 + 1
    training, validation = run_frames(two_sets, 0.5, seed=0, val_max_frames=1)
    assert [len(validation[name]) for name in ("street", "station")] == [1, 1]
    assert len(training) == 4 + 1  # the frame beyond the cap trains
    with pytest.raises(ValueError, match="distinct folder names"):
        run_frames([two_sets[0], two_sets[0]], 0.5, seed=0)


def test_a_run_on_several_sets_selects_on_all_their_validation_slices(two_sets, tmp_path):
    config = replace(_config(two_sets[0], tmp_path / "run", epochs=2), data=two_sets, val_fraction=0.25)
    best = train(config)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for record in metrics:
        assert {"val_mae/street", "val_mae/station", "val_score"} <= record.keys()
    assert best["val_score"] == min(record["val_score"] for record in metrics)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["val_images"][-1].startswith("station/")


def test_several_sets_are_drawn_equally_whatever_their_sizes(two_sets):
    training, _ = run_frames(two_sets, 0.25, seed=0)
    sampler = balanced_sampler(training, two_sets, torch.Generator().manual_seed(0))
    drawn = [training[i] for _ in range(50) for i in sampler]
    assert len(drawn) == 50 * len(training)
    station = sum("station" in str(sample.image_path) for sample in drawn) / len(drawn)
    assert 0.45 < station < 0.55  # 1 of station's frames against street's 4
    one_set = balanced_sampler(training, two_sets[:1], torch.Generator().manual_seed(0))
    assert sorted(one_set) == list(range(len(training)))  # one set: a plain shuffle


def test_set_weights_draw_a_set_more_often(two_sets, tmp_path):
    training, _ = run_frames(two_sets, 0.25, seed=0)
    sampler = balanced_sampler(training, two_sets, torch.Generator().manual_seed(0), set_weights=[1.0, 3.0])
    drawn = [training[i] for _ in range(50) for i in sampler]
    station = sum("station" in str(sample.image_path) for sample in drawn) / len(drawn)
    assert 0.7 < station < 0.8  # street 1 : station 3
    with pytest.raises(ValueError, match="one positive weight for each"):
        train(replace(_config(two_sets[0], tmp_path / "run", epochs=1), data=two_sets, set_weights=[1.0]))


def test_the_train_command_offers_every_setting_with_its_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    for item in fields(TrainConfig):
        if "help" in item.metadata:
            assert f"--{item.name.replace('_', '-')}" in shown
    assert "--val-images" not in shown  # filled in by the run


def test_the_train_command_resumes_with_the_runs_own_recipe(small_folder, tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["train", "--arch", "csrnet-lite", "--data", str(small_folder), "--out", out]
    recipe = ["--batch-size", "2", "--crop", "192", "256", "--scale-range", "1", "1", "--lr", "3e-3"]
    assert main([*common, *recipe, "--epochs", "1", "--warmup-epochs", "1", "--val-fraction", "0.2", "--no-bf16"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["crop"], config["bf16"], config["batch_size"]) == ([192, 256], False, 2)
    assert config["ema_decay"] == TrainConfig.ema_decay  # not given: the declared default
    assert main([*common, "--resume", "--epochs", "2"]) == 0  # the recipe not given again
    assert len(_losses(tmp_path / "run")) == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["crop"] == [192, 256]


def test_the_train_command_refuses_set_weights_that_do_not_match_the_sets(small_folder, tmp_path, capsys):
    args = ["train", "--arch", "csrnet-lite", "--data", str(small_folder), "--out", str(tmp_path / "run")]
    assert main([*args, "--set-weights", "1", "2"]) == 2
    assert "one positive weight for each" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_selection_prefers_an_epoch_the_shipping_rule_accepts_over_a_lower_score():
    refused = {"val_worse_sets": 1, "val_score": 0.2}
    accepted = {"val_worse_sets": 0, "val_score": 0.5}
    assert selection_key(accepted) < selection_key(refused)
    assert selection_key({"val_score": 0.3}) < selection_key({"val_score": 0.4})  # no baseline: the score alone


def test_a_run_against_baseline_weights_counts_the_sets_it_falls_behind_on(two_sets, tmp_path):
    first = replace(_config(two_sets[0], tmp_path / "first", epochs=1), data=two_sets, val_fraction=0.25)
    train(first)
    baseline = str(tmp_path / "first" / "best.pt")
    second = replace(first, out=str(tmp_path / "second"), epochs=2, baseline_weights=baseline)
    best = train(second)
    metrics = [json.loads(line) for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()]
    assert all(record["val_worse_sets"] in (0, 1, 2) for record in metrics)
    assert selection_key(best) == min(selection_key(record) for record in metrics)


def test_the_compare_command_applies_the_shipping_rule_on_a_runs_validation_slices(two_sets, tmp_path, capsys):
    train(replace(_config(two_sets[0], tmp_path / "run", epochs=1), data=two_sets, val_fraction=0.25))
    weights = str(tmp_path / "run" / "best.pt")
    capsys.readouterr()  # the run's own lines
    assert main(["compare", str(tmp_path / "run"), "--old", weights, "--new", weights, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert [row["set"] for row in verdict["sets"]] == ["street", "station"]
    for row in verdict["sets"]:
        assert row["old_mae"] == row["new_mae"] and not row["worse"]
    assert verdict["old_score"] == verdict["new_score"] and not verdict["rule_holds"]  # not better: not shipped
    assert main(["compare", str(tmp_path / "run"), "--old", weights, "--new", weights]) == 0
    assert "the rule fails" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "nothing"), "--old", weights, "--new", weights]) == 2
    assert "holds no training run" in capsys.readouterr().err
