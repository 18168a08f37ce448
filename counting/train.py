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

from counting.bayesian_loss import bayesian_loss
from counting.csrnet import init_frontend_from_vgg16
from counting.datasets import (
    AnnotatedImage,
    Augmentation,
    CrowdCrops,
    GroundTruthCache,
    collate_crops,
    load_annotated,
)
from counting.engine import configure_threads, predict_density, training_autocast, training_precision
from counting.images import load_rgb
from counting.models import build, density_head, load_model, save_weights

# Density cells hold tiny values (a head spread over dozens of cells); scaling them keeps the squared errors well
# above float resolution. The count term (weight `count_loss_weight`) then stays a minor correction to the MSE.
DENSITY_SCALE = 100.0

LOSSES = ("density", "bayesian")


@dataclass
class TrainConfig:
    arch: str
    # One data set or several (ShanghaiTech parts or point folders), each with a train split; with several, every
    # epoch draws from each set equally often and the best model is chosen on all their validation slices together.
    data: list[str]
    out: str
    epochs: int = 50
    batch_size: int = 8
    crop: tuple[int, int] = (384, 512)
    scale_range: tuple[float, float] = (0.8, 1.2)
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    count_loss_weight: float = 0.1
    # "density": MSE against the Gaussian density map plus the count term; "bayesian": the Bayesian loss on the head
    # points (counting.bayesian_loss), with a Gaussian likelihood of this sigma in pixels.
    loss: str = "density"
    bayesian_sigma: float = 8.0
    bayesian_background_ratio: float = 0.15  # 0: no background pseudo-head
    batch_norm_batches: int = 32  # batches of training frames that re-estimate batch-norm statistics
    head_lr_scale: float = 0.1  # the density head's learning rate relative to the rest's (see `optimizer_groups`)
    ema_decay: float = 0.995
    val_fraction: float = 0.1
    val_max_frames: int | None = None  # at most this many validation frames from each data set
    val_every: int = 1
    seed: int = 0
    device: str = "cpu"
    bf16: bool | None = None  # bf16 autocast; None: where the hardware computes bf16 natively
    threads: int | None = None
    max_steps_per_epoch: int | None = None  # for short runs (tests, smoke checks)
    vgg16: str | None = None  # a local torchvision VGG-16 state dict to start full CSRNet's front end from
    init_weights: str | None = None  # start from these weights (for example a fine-tuning phase)
    # Estimate batch-norm statistics once, at the start, and train with them fixed: training and inference then
    # normalise alike, so the count no longer hangs on a fresh estimate at every validation.
    freeze_batch_norm: bool = False
    # From this epoch (1-based) on, average the (EMA) weights at the end of every epoch (SWA): an average of the
    # points SGD visits generalises better than any one of them, and its validation MAE swings less.
    swa_start_epoch: int | None = None
    photometric: bool = False  # colour jitter, greyscale, blur and JPEG artefacts on the crops (see `augment`)
    # With several data sets, how often each is drawn relative to the others, in `data`'s order (default: equally).
    set_weights: list[float] | None = None
    val_images: list[str] = field(default_factory=list)  # "SET/IMAGE_NAME", SET the data folder's name


# What may differ when a run resumes: where it runs and how long it lasts, not how it trains.
RESUMABLE_CHANGES = {"epochs", "device", "threads", "out", "val_images"}


def _last_checkpoint(out: str | Path) -> dict | None:
    last_path = Path(out) / "last.pt"
    return torch.load(last_path, map_location="cpu", weights_only=True) if last_path.exists() else None


def _config_of(checkpoint: dict) -> TrainConfig:
    saved = checkpoint["config"]
    return TrainConfig(**{**saved, "crop": tuple(saved["crop"]), "scale_range": tuple(saved["scale_range"])})


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
    return _config_of(checkpoint) if checkpoint is not None else None


def density_loss(pred: torch.Tensor, target: torch.Tensor, count_weight: float) -> torch.Tensor:
    pixel = torch.mean((DENSITY_SCALE * (pred - target)) ** 2)
    count = torch.mean(torch.abs(pred.sum(dim=(1, 2, 3)) - target.sum(dim=(1, 2, 3))))
    return pixel + count_weight * count


def split_train_val(samples: list, fraction: float, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = max(1, round(len(samples) * fraction)) if fraction > 0 else 0
    val_ids = set(order[:n_val].tolist())
    return [s for i, s in enumerate(samples) if i not in val_ids], [s for i, s in enumerate(samples) if i in val_ids]


def _errors(model: nn.Module, samples: list, images: dict[str, np.ndarray], config: TrainConfig) -> np.ndarray:
    errors = []
    precision = training_precision(config.device, config.bf16)
    for sample in samples:
        key = str(sample.image_path)
        if key not in images:
            images[key] = load_rgb(sample.image_path)
        predicted = predict_density(model, images[key], precision, config.device).sum()
        errors.append(float(predicted) - sample.count)
    return np.asarray(errors)


def validate(
    model: nn.Module, slices: dict[str, list], images: dict[str, np.ndarray], config: TrainConfig
) -> dict[str, float]:
    """MAE, MSE (root mean square) and bias over every set's validation slice, and `val_score`, the figure the
    best model is chosen by: the MAE itself for one set; for several, the mean over sets of each set's MAE relative
    to its mean annotated count (Part A's hundreds of people would otherwise outweigh every other set), with each
    set's MAE and relative MAE recorded beside it."""
    model.eval()
    per_set = {name: (_errors(model, samples, images, config), samples) for name, samples in slices.items() if samples}
    errors = np.concatenate([set_errors for set_errors, _ in per_set.values()])
    record = {
        "val_mae": float(np.abs(errors).mean()),
        "val_mse": float(np.sqrt((errors**2).mean())),
        "val_bias": float(errors.mean()),  # over- (positive) or under-counting on average
    }
    if len(per_set) == 1:
        return {**record, "val_score": record["val_mae"]}
    relative = []
    for name, (set_errors, samples) in per_set.items():
        mean_count = max(float(np.mean([s.count for s in samples])), 1.0)
        record[f"val_mae/{name}"] = float(np.abs(set_errors).mean())
        relative.append(record[f"val_mae/{name}"] / mean_count)
    return {**record, "val_score": float(np.mean(relative))}


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
    weights = torch.tensor([set_weights[i] / sizes[i] for i in owner], dtype=torch.double)
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


def _average_epoch_weights(
    swa: AveragedModel,
    ema: nn.Module,
    calibration: CrowdCrops,
    val_slices: dict[str, list],
    val_images: dict,
    config: TrainConfig,
) -> dict[str, float]:
    """Fold this epoch's EMA weights into the average; its validation figures, prefixed `swa_`.

    The EMA weights, not the raw ones: a fraction of a per-mille on the output bias moves a frame's count by tens
    (the raw weights at an epoch's end counted 78 too many on validation where their EMA counted 4), and only an
    average of very many epochs would smooth that.
    """
    swa.update_parameters(ema)
    _copy_buffers(swa.module, ema)
    if not config.freeze_batch_norm:
        recalibrate_batch_norm(swa.module, calibration, config)
    if not any(val_slices.values()):
        return {}
    return {f"swa_{name}": value for name, value in validate(swa.module, val_slices, val_images, config).items()}


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


def train(config: TrainConfig, resume: bool = False, stop_after_epochs: int | None = None) -> dict[str, float]:
    """Train (or, with `resume`, continue) the run in `config.out`; returns the best validation figures.

    `stop_after_epochs` ends this invocation early, checkpointed, without changing the run's schedule: a long run
    can be split across sessions and resumed.
    """
    out = Path(config.out)
    last_path = out / "last.pt"
    state = _last_checkpoint(out)
    saved = _config_of(state) if state is not None else None
    if saved is not None and not resume:
        raise FileExistsError(f"{out} already holds a run; continue it with --resume or choose another --out")
    if resume and saved is None:
        print(f"no checkpoint at {last_path}; starting afresh")
    if saved is not None:
        ignored = {
            name: value
            for name, value in asdict(config).items()
            if name not in RESUMABLE_CHANGES and value != getattr(saved, name)
        }
        if ignored:
            print(f"resuming with the run's own recipe; ignoring {ignored}")
        config = replace(saved, epochs=config.epochs, device=config.device, threads=config.threads)
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}")
    if config.set_weights is not None and (len(config.set_weights) != len(config.data) or min(config.set_weights) <= 0):
        raise ValueError(f"set weights {config.set_weights}: give one positive weight for each of {config.data}")
    out.mkdir(parents=True, exist_ok=True)

    configure_threads(config.threads)
    torch.manual_seed(config.seed)

    train_samples, val_slices = run_frames(config.data, config.val_fraction, config.seed, config.val_max_frames)
    if not train_samples:
        raise ValueError(f"{config.data}: no images left to train on beside the validation slices")
    config.val_images = [frame_id(data, s) for data in config.data for s in val_slices[set_name(data)]]
    has_validation = any(val_slices.values())
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))

    cache = GroundTruthCache()
    augmentation = Augmentation(config.crop, config.scale_range, photometric=config.photometric)
    dataset = CrowdCrops(train_samples, augmentation, cache, config.seed)
    calibration = dataset.unaugmented()
    model = build(config.arch)
    if config.vgg16 and saved is None:
        init_frontend_from_vgg16(model, torch.load(config.vgg16, map_location="cpu", weights_only=True))
    if config.init_weights and saved is None:
        model.load_state_dict(load_model(config.arch, config.init_weights)[0].state_dict())
    model = model.to(config.device)
    if config.freeze_batch_norm and saved is None:
        recalibrate_batch_norm(model, calibration, config)
    ema = copy.deepcopy(model).eval()
    swa = AveragedModel(model) if config.swa_start_epoch else None
    optimizer = torch.optim.AdamW(optimizer_groups(model, config), lr=config.lr)
    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = steps_per_epoch * config.warmup_epochs

    start_epoch, step, best = 0, 0, {"val_score": float("inf")}
    elapsed = 0.0
    if saved is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if swa is not None and "swa" in state:
            swa.load_state_dict(state["swa"])
        start_epoch, step, best, elapsed = state["epoch"], state["step"], state["best"], state["elapsed"]
        print(f"resumed {out} at epoch {start_epoch}, step {step}, best validation score {best['val_score']:.3f}")

    val_images: dict[str, np.ndarray] = {}
    autocast = training_autocast(config.device, config.bf16)
    for epoch in range(start_epoch, config.epochs):
        epoch_started = time.perf_counter()
        dataset.epoch = epoch
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=balanced_sampler(train_samples, config.data, generator, config.set_weights),
            drop_last=False,
            collate_fn=collate_crops,
        )
        set_train_mode(model, config.freeze_batch_norm)
        losses = []
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for batch_index, (images, targets, points) in enumerate(bar):
            if batch_index >= steps_per_epoch:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, total_steps, warmup_steps, config.lr) * group["lr_scale"]
            images = images.to(config.device).contiguous(memory_format=torch.channels_last)
            targets = targets.to(config.device)
            with autocast:
                pred = model(images)
            if config.loss == "bayesian":
                loss = bayesian_loss(
                    pred.float(),
                    [p.to(config.device) for p in points],
                    config.bayesian_sigma,
                    config.bayesian_background_ratio,
                )
            else:
                loss = density_loss(pred.float(), targets, config.count_loss_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            _update_ema(ema, model, config.ema_decay if step >= warmup_steps else 0.0)
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()

        record = {
            "epoch": epoch + 1,
            "step": step,
            "loss": float(np.mean(losses)),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if has_validation and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
            if not config.freeze_batch_norm:
                recalibrate_batch_norm(ema, calibration, config)
            record.update(validate(ema, val_slices, val_images, config))
            if record["val_score"] < best["val_score"]:
                best = {name: value for name, value in record.items() if name.startswith("val_")} | {"epoch": epoch + 1}
                save_weights(ema, config.arch, out / "best.pt", epoch=epoch + 1, data=config.data, validation=best)
        if swa is not None and epoch + 1 >= config.swa_start_epoch:
            record.update(_average_epoch_weights(swa, ema, calibration, val_slices, val_images, config))
            save_weights(swa.module, config.arch, out / "swa.pt", epoch=epoch + 1, data=config.data)
        elapsed += time.perf_counter() - epoch_started
        record["elapsed_s"] = round(elapsed, 1)
        with (out / "metrics.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        checkpoint = {
            "config": asdict(config),
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            **({"swa": swa.state_dict()} if swa is not None else {}),
            "epoch": epoch + 1,
            "step": step,
            "best": best,
            "elapsed": elapsed,
        }
        torch.save(checkpoint, out / "last.pt.tmp")
        (out / "last.pt.tmp").replace(last_path)
        if stop_after_epochs and epoch + 1 - start_epoch >= stop_after_epochs and epoch + 1 < config.epochs:
            print(f"stopping after {stop_after_epochs} epochs; continue with --resume", flush=True)
            return best
    if not has_validation and not config.freeze_batch_norm:
        recalibrate_batch_norm(ema, calibration, config)
        save_weights(ema, config.arch, out / "best.pt", epoch=config.epochs, data=config.data)
    return best
