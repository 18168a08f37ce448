"""Training: augmented crops, density MSE plus a count term, AdamW with warm-up and cosine decay, an EMA of the
weights, validation MAE on a held-out slice of the training split, best-model selection, resumable checkpoints, and
optionally stochastic weight averaging (SWA) of the epochs' weights.

A run lives in one folder: `config.json` (the recipe and the validation slice), `metrics.jsonl` (one line per
epoch), `last.pt` (everything needed to resume), `best.pt` (inference weights of the best validation MAE) and, with
SWA, `swa.pt` (the average of the EMA weights at the end of each epoch from `swa_start_epoch` on).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, RandomSampler, Sampler, WeightedRandomSampler
from tqdm import tqdm

from counting.csrnet import CSRNet, init_frontend_from_vgg16
from counting.engine import configure_threads, frame_density, training_autocast, training_precision
from counting.images import load_rgb
from counting.models import build, density_head, load_model, save_weights
from counting.training.bayesian_loss import bayesian_loss
from counting.training.config import RESUMABLE_CHANGES, TrainConfig
from counting.training.datasets import (
    AnnotatedImage,
    Augmentation,
    CrowdCrops,
    GroundTruthCache,
    collate_crops,
    load_annotated,
)
from counting.training.evaluate import CountErrors, PairedChange, mix_score

# Density cells hold tiny values (a head spread over dozens of cells); scaling them keeps the squared errors well
# above float resolution. The count term (weight `count_loss_weight`) then stays a minor correction to the MSE.
DENSITY_SCALE = 100.0


def _last_checkpoint(out: str | Path) -> dict | None:
    last_path = Path(out) / "last.pt"
    return torch.load(last_path, map_location="cpu", weights_only=True) if last_path.exists() else None


def set_name(data: str) -> str:
    """A data set's name in metrics and validation ids: its folder's name (part_B, scut-head-a, ...)."""
    return Path(data).name


def frame_id(data: str, sample: AnnotatedImage) -> str:
    return f"{set_name(data)}/{sample.image_path.name}"


def run_frames(
    data: list[str], val_fraction: float, seed: int, val_max_frames: int | None = None
) -> tuple[list[AnnotatedImage], dict[str, list[AnnotatedImage]]]:
    """The training frames of all `data` sets and each set's validation slice, by set name.

    Each set's slice is drawn from its own train split (seeded), so every set is validated whatever their sizes.
    """
    names = [set_name(path) for path in data]
    if len(set(names)) != len(names):
        raise ValueError(f"data sets need distinct folder names, not {names}")
    training, validation = [], {}
    for path in data:
        samples = load_annotated(path, "train")
        train_part, val_part = split_train_val(samples, val_fraction, seed)
        if val_max_frames is not None:
            train_part, val_part = train_part + val_part[val_max_frames:], val_part[:val_max_frames]
        training += train_part
        validation[set_name(path)] = val_part
    return training, validation


def saved_config(out: str | Path) -> TrainConfig | None:
    """The recipe of the run in `out`, from its last checkpoint; None when there is none."""
    checkpoint = _last_checkpoint(out)
    return TrainConfig.from_saved(checkpoint["config"]) if checkpoint is not None else None


def density_loss(pred: torch.Tensor, target: torch.Tensor, count_weight: float) -> torch.Tensor:
    pixel = torch.mean((DENSITY_SCALE * (pred - target)) ** 2)
    count = torch.mean(torch.abs(pred.sum(dim=(1, 2, 3)) - target.sum(dim=(1, 2, 3))))
    return pixel + count_weight * count


def split_train_val(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = max(1, round(len(samples) * fraction)) if fraction > 0 else 0
    val_ids = set(order[:n_val].tolist())
    return [s for i, s in enumerate(samples) if i not in val_ids], [s for i, s in enumerate(samples) if i in val_ids]


def _validation_counts(
    model: nn.Module, samples: list, images: dict[str, np.ndarray], config: TrainConfig
) -> list[float]:
    counts = []
    precision = training_precision(config.device, config.bf16)
    for sample in samples:
        key = str(sample.image_path)
        if key not in images:
            images[key] = load_rgb(sample.image_path)
        counts.append(float(frame_density(model, images[key], precision, config.device).sum()))
    return counts


def validate(
    model: nn.Module,
    slices: dict[str, list],
    images: dict[str, np.ndarray],
    config: TrainConfig,
    baseline: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """MAE, MSE and bias (`counting.training.evaluate.CountErrors`) over every set's validation slice, and `val_score`:
    the MAE itself for one set; for several, the mean over sets of each set's MAE relative to its mean annotated count
    (Part A's hundreds of people would otherwise outweigh every other set), with each set's MAE recorded beside it.

    With `baseline` (another model's counts on the same frames, by set), `val_worse_sets` is the number of sets on
    which this model is worse than the baseline by more than the paired standard error (`PairedChange.worse`).
    """
    model.eval()
    counted = {name: _validation_counts(model, samples, images, config) for name, samples in slices.items() if samples}
    annotated = {name: [sample.count for sample in slices[name]] for name in counted}
    overall = CountErrors.of(np.concatenate(list(counted.values())), np.concatenate(list(annotated.values())))
    record = {"val_mae": overall.mae, "val_mse": overall.mse, "val_bias": overall.bias}
    if baseline is not None:
        changes = [PairedChange.of(counted[name], baseline[name], annotated[name]) for name in counted]
        record["val_worse_sets"] = sum(change.worse for change in changes)
    if len(counted) == 1:
        return {**record, "val_score": overall.mae}
    for name in counted:
        record[f"val_mae/{name}"] = CountErrors.of(counted[name], annotated[name]).mae
    return {**record, "val_score": mix_score(counted, annotated)}


def selection_key(figures: dict[str, float]) -> tuple[float, float]:
    """What the kept epoch minimises: first the sets worse than the baseline (when there is one), then the score, so
    that an epoch the shipping rule would refuse never displaces one it would accept."""
    return figures.get("val_worse_sets", 0), figures["val_score"]


def optimizer_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Parameter groups: weights decayed, biases and batch-norm scales not, the density head at a lower rate.

    The head writes densities of about 1e-3 a cell, so its weights are of that order too, and Adam moves every
    parameter by about the learning rate a step, whatever its scale: at 3e-4 its bias alone moved a frame's count
    (the sum of 12,288 cells) by up to 4 a step and its weights by several per cent. At a tenth of the rate a step
    is a small change; at a hundredth the head learned too slowly and the count stayed low (see the model card).
    """
    head = set(density_head(model).parameters())
    body = [p for p in model.parameters() if p not in head]
    return [
        {"params": [p for p in body if p.ndim > 1], "weight_decay": config.weight_decay, "lr_scale": 1.0},
        {"params": [p for p in body if p.ndim <= 1], "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": list(head), "weight_decay": 0.0, "lr_scale": config.head_lr_scale},
    ]


def balanced_sampler(
    samples: list[AnnotatedImage], data: list[str], generator: torch.Generator, set_weights: list[float] | None = None
) -> Sampler:
    """A shuffle of the training frames; with several data sets, a draw (with replacement, as many as there are
    frames) in which each set is drawn in proportion to its `set_weights` entry whatever its size (all equally
    likely by default, so 300 Part A frames weigh as much as 1,500 classroom frames)."""
    if len(data) <= 1:
        return RandomSampler(samples, generator=generator)
    set_weights = set_weights or [1.0] * len(data)
    roots = [Path(path).absolute() for path in data]
    owner = [next(i for i, root in enumerate(roots) if s.image_path.absolute().is_relative_to(root)) for s in samples]
    sizes = np.bincount(owner, minlength=len(roots))
    weights = [float(set_weights[i] / sizes[i]) for i in owner]
    return WeightedRandomSampler(weights, len(samples), replacement=True, generator=generator)


def learning_rate_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up over `warmup` steps to `base`, then cosine decay to 1% of it at step `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, dataset: CrowdCrops, config: TrainConfig) -> None:
    """Re-estimate batch-norm running statistics for `model`'s current weights (precise BN) on `dataset`.

    The running averages kept during training trail weights that keep moving, and those of an EMA model belong to
    other weights altogether; evaluation with them under-counts badly. Batches of training frames, averaged exactly
    (momentum None), give statistics that match the weights being evaluated or shipped. `dataset` is meant to be the
    training frames `unaugmented()`: the same frames each time, as inference sees them, so that two epochs' counts
    differ by their weights and not by the draw of frames (with a fresh augmented draw each time, the validation count
    swung by 10 to 40 a frame between epochs).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    # Drawn as training draws its batches: statistics of a mix other than the one the weights were trained on shift
    # every feature. With five sets estimated uniformly over frames (three quarters SCUT-HEAD), a model that counted
    # Part B validation frames 10 under counted them 106 over.
    generator = torch.Generator().manual_seed(config.seed * 100_003 + dataset.epoch)
    order = list(balanced_sampler(dataset.samples, config.data, generator, config.set_weights))
    autocast = training_autocast(config.device, config.bf16)
    with autocast:
        for start in range(0, min(len(dataset), config.batch_norm_batches * config.batch_size), config.batch_size):
            images = torch.stack([dataset[int(i)][0] for i in order[start : start + config.batch_size]])
            model(images.to(config.device).contiguous(memory_format=torch.channels_last))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


def set_train_mode(model: nn.Module, freeze_batch_norm: bool) -> None:
    """Training mode, with batch-norm layers kept in eval mode (their statistics fixed) when `freeze_batch_norm`."""
    model.train()
    if freeze_batch_norm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


@torch.no_grad()
def _copy_buffers(target: nn.Module, source: nn.Module) -> None:
    """Batch-norm statistics are not averaged: they follow the model they are copied from."""
    for target_buffer, buffer in zip(target.buffers(), source.buffers(), strict=True):
        target_buffer.copy_(buffer)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
        ema_p.lerp_(p, 1 - decay)
    _copy_buffers(ema, model)


@dataclass
class TrainingRun:
    """A run in progress: its recipe, its frames, the model with its EMA (and SWA average), and where it stands."""

    config: TrainConfig
    train_samples: list[AnnotatedImage]
    val_slices: dict[str, list[AnnotatedImage]]  # by set name
    dataset: CrowdCrops  # augmented training crops
    calibration: CrowdCrops  # the training frames un-augmented, for batch-norm statistics
    model: nn.Module
    ema: nn.Module  # what is validated and shipped
    swa: AveragedModel | None
    optimizer: torch.optim.Optimizer
    steps_per_epoch: int
    epoch: int = 0  # epochs done
    step: int = 0  # optimiser steps done
    best: dict = field(default_factory=lambda: {"val_worse_sets": math.inf, "val_score": math.inf})
    elapsed: float = 0.0  # seconds spent in epochs, over every invocation
    val_images: dict[str, np.ndarray] = field(default_factory=dict)  # validation frames, decoded once
    baseline_counts: dict[str, list[float]] | None = None  # `baseline_weights`' validation counts, by set

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def has_validation(self) -> bool:
        return any(self.val_slices.values())


def train(config: TrainConfig, resume: bool = False, stop_after_epochs: int | None = None) -> dict[str, float]:
    """Train (or, with `resume`, continue) the run in `config.out`; returns the best validation figures.

    `stop_after_epochs` ends this invocation early, checkpointed, without changing the run's schedule: a long run
    can be split across sessions and resumed.
    """
    config, checkpoint = _recipe(config, resume)
    run = _start(config, checkpoint)
    first_epoch = run.epoch
    while run.epoch < config.epochs:
        started = time.perf_counter()
        record = _train_one_epoch(run)
        record |= _validate_and_keep_best(run)
        record |= _average_weights(run)
        run.elapsed += time.perf_counter() - started
        record["elapsed_s"] = round(run.elapsed, 1)
        with (run.out / "metrics.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        _save_checkpoint(run)
        if stop_after_epochs and run.epoch - first_epoch >= stop_after_epochs and run.epoch < config.epochs:
            print(f"stopping after {stop_after_epochs} epochs; continue with --resume", flush=True)
            return run.best
    if not run.has_validation and not config.freeze_batch_norm:
        recalibrate_batch_norm(run.ema, run.calibration, config)
        save_weights(run.ema, config.arch, run.out / "best.pt", epoch=config.epochs, data=config.data)
    return run.best


def _recipe(config: TrainConfig, resume: bool) -> tuple[TrainConfig, dict | None]:
    """The recipe to follow and the checkpoint to continue from: a resumed run keeps its own recipe but for
    `RESUMABLE_CHANGES`."""
    checkpoint = _last_checkpoint(config.out)
    if checkpoint is None:
        if resume:
            print(f"no checkpoint at {Path(config.out) / 'last.pt'}; starting afresh")
        return config, None
    if not resume:
        raise FileExistsError(f"{config.out} already holds a run; continue it with --resume or choose another --out")
    saved = TrainConfig.from_saved(checkpoint["config"])
    ignored = {
        name: value
        for name, value in asdict(config).items()
        if name not in RESUMABLE_CHANGES and value != getattr(saved, name)
    }
    if ignored:
        print(f"resuming with the run's own recipe; ignoring {ignored}")
    changes = {name: getattr(config, name) for name in ("epochs", "device", "threads", "loader_workers")}
    return replace(saved, **changes), checkpoint


def _start(config: TrainConfig, checkpoint: dict | None) -> TrainingRun:
    """The run's frames, model, EMA, optimiser and schedule; from `checkpoint` when continuing one."""
    Path(config.out).mkdir(parents=True, exist_ok=True)
    configure_threads(config.threads)
    torch.manual_seed(config.seed)

    train_samples, val_slices = run_frames(config.data, config.val_fraction, config.seed, config.val_max_frames)
    if not train_samples:
        raise ValueError(f"{config.data}: no images left to train on beside the validation slices")
    config.val_images = [frame_id(data, s) for data in config.data for s in val_slices[set_name(data)]]
    (Path(config.out) / "config.json").write_text(json.dumps(asdict(config), indent=2))

    augmentation = Augmentation(config.crop, config.scale_range, photometric=config.photometric)
    dataset = CrowdCrops(train_samples, augmentation, GroundTruthCache(), config.seed)
    calibration = dataset.unaugmented()
    model = build(config.arch)
    if config.vgg16 and checkpoint is None:
        if not isinstance(model, CSRNet):
            raise ValueError(f"--vgg16 starts a CSRNet's front end; {config.arch} is no CSRNet")
        init_frontend_from_vgg16(model, torch.load(config.vgg16, map_location="cpu", weights_only=True))
    if config.init_weights and checkpoint is None:
        model.load_state_dict(load_model(config.arch, config.init_weights)[0].state_dict())
    model = model.to(config.device)
    if config.freeze_batch_norm and checkpoint is None and not config.keep_batch_norm:
        recalibrate_batch_norm(model, calibration, config)
    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    run = TrainingRun(
        config=config,
        train_samples=train_samples,
        val_slices=val_slices,
        dataset=dataset,
        calibration=calibration,
        model=model,
        ema=copy.deepcopy(model).eval(),
        swa=AveragedModel(model) if config.swa_start_epoch else None,
        optimizer=torch.optim.AdamW(optimizer_groups(model, config), lr=config.lr),
        steps_per_epoch=steps_per_epoch,
    )
    if config.baseline_weights and run.has_validation:
        baseline = load_model(config.arch, config.baseline_weights)[0].to(config.device).eval()
        run.baseline_counts = {
            name: _validation_counts(baseline, samples, run.val_images, config)
            for name, samples in val_slices.items()
            if samples
        }
    if checkpoint is not None:
        run.model.load_state_dict(checkpoint["model"])
        run.ema.load_state_dict(checkpoint["ema"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        if run.swa is not None and "swa" in checkpoint:
            run.swa.load_state_dict(checkpoint["swa"])
        run.epoch, run.step, run.best = checkpoint["epoch"], checkpoint["step"], checkpoint["best"]
        run.elapsed = checkpoint["elapsed"]
        best_score = run.best["val_score"]
        print(f"resumed {run.out} at epoch {run.epoch}, step {run.step}, best validation score {best_score:.3f}")
    return run


def _train_one_epoch(run: TrainingRun) -> dict[str, float]:
    """`steps_per_epoch` optimiser steps on crops drawn by `balanced_sampler`, each followed by an EMA update."""
    config = run.config
    total_steps = run.steps_per_epoch * config.epochs
    warmup_steps = run.steps_per_epoch * config.warmup_epochs
    run.dataset.epoch = run.epoch
    generator = torch.Generator().manual_seed(config.seed * 100_003 + run.epoch)
    loader = DataLoader(
        run.dataset,
        batch_size=config.batch_size,
        sampler=balanced_sampler(run.train_samples, config.data, generator, config.set_weights),
        drop_last=False,
        collate_fn=collate_crops,
        num_workers=config.loader_workers,
        pin_memory=config.device.startswith("cuda"),
    )
    autocast = training_autocast(config.device, config.bf16)
    set_train_mode(run.model, config.freeze_batch_norm)
    losses = []
    bar = tqdm(loader, total=run.steps_per_epoch, desc=f"epoch {run.epoch + 1}/{config.epochs}", leave=False)
    for batch_index, (images, targets, points) in enumerate(bar):
        if batch_index >= run.steps_per_epoch:
            break
        for group in run.optimizer.param_groups:
            group["lr"] = learning_rate_at(run.step, total_steps, warmup_steps, config.lr) * group["lr_scale"]
        images = images.to(config.device).contiguous(memory_format=torch.channels_last)
        with autocast:
            pred = run.model(images)
        if config.loss == "bayesian":
            points = [p.to(config.device) for p in points]
            loss = bayesian_loss(pred.float(), points, config.bayesian_sigma, config.bayesian_background_ratio)
        else:
            loss = density_loss(pred.float(), targets.to(config.device), config.count_loss_weight)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(run.model.parameters(), 10.0)
        run.optimizer.step()
        _update_ema(run.ema, run.model, config.ema_decay if run.step >= warmup_steps else 0.0)
        run.step += 1
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    run.epoch += 1
    return {
        "epoch": run.epoch,
        "step": run.step,
        "loss": float(np.mean(losses)),
        "lr": run.optimizer.param_groups[0]["lr"],
    }


def _validate_and_keep_best(run: TrainingRun) -> dict[str, float]:
    """On validation epochs: the EMA's figures, and `best.pt` rewritten when its score is the best so far."""
    config = run.config
    if not run.has_validation or (run.epoch % config.val_every != 0 and run.epoch != config.epochs):
        return {}
    if not config.freeze_batch_norm:
        recalibrate_batch_norm(run.ema, run.calibration, config)
    figures = validate(run.ema, run.val_slices, run.val_images, config, run.baseline_counts)
    if selection_key(figures) < selection_key(run.best):
        run.best = {name: value for name, value in figures.items() if name.startswith("val_")} | {"epoch": run.epoch}
        save_weights(run.ema, config.arch, run.out / "best.pt", epoch=run.epoch, data=config.data, validation=run.best)
    return figures


def _average_weights(run: TrainingRun) -> dict[str, float]:
    """From `swa_start_epoch` on: this epoch's EMA weights folded into the average (`swa.pt`), and the average's
    validation figures, prefixed `swa_`.

    The EMA weights, not the raw ones: a fraction of a per-mille on the output bias moves a frame's count by tens
    (the raw weights at an epoch's end counted 78 too many on validation where their EMA counted 4), and only an
    average of very many epochs would smooth that.
    """
    config = run.config
    if run.swa is None or config.swa_start_epoch is None or run.epoch < config.swa_start_epoch:
        return {}
    run.swa.update_parameters(run.ema)
    _copy_buffers(run.swa.module, run.ema)
    if not config.freeze_batch_norm:
        recalibrate_batch_norm(run.swa.module, run.calibration, config)
    save_weights(run.swa.module, config.arch, run.out / "swa.pt", epoch=run.epoch, data=config.data)
    if not run.has_validation:
        return {}
    figures = validate(run.swa.module, run.val_slices, run.val_images, config, run.baseline_counts)
    return {f"swa_{name}": value for name, value in figures.items()}


def _save_checkpoint(run: TrainingRun) -> None:
    """Everything needed to resume, written atomically to `last.pt`."""
    checkpoint = {
        "config": asdict(run.config),
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        **({"swa": run.swa.state_dict()} if run.swa is not None else {}),
        "epoch": run.epoch,
        "step": run.step,
        "best": run.best,
        "elapsed": run.elapsed,
    }
    torch.save(checkpoint, run.out / "last.pt.tmp")
    (run.out / "last.pt.tmp").replace(run.out / "last.pt")
