"""Per-camera calibration: fine-tune a copy of a camera's weights on its marked frames, switch only when it helps.

The contract, measured by k-fold cross-validation on the marked frames themselves:

- The frames are dealt into `folds` folds by a seeded permutation (frame i of the permutation goes to fold i mod k),
  so every frame is held out exactly once and the split is the same for the same frames and seed.
- Before: the base weights count every marked frame whole, as inference does (`counting.engine.frame_density`);
  the base never trained on any of them, so each is a held-out prediction. `held_out_mae_before` is their MAE.
- After: for each fold, a fresh copy of the base is fine-tuned on the other folds' frames and counts that fold's
  frames whole; `held_out_mae_after` is the MAE of those predictions, each made by weights that never saw its frame.
- Switch only when after < before (strictly). Then one more fine-tune on all the marked frames gives the weights
  written to `out` (atomically; nothing is written otherwise). Its error on new frames is estimated by the k-fold
  figure, made with slightly fewer training frames, so the estimate leans pessimistic.

The fine-tune reuses the training pieces of `counting.training.train`: the density loss (MSE plus a count term), AdamW
parameter groups with the density head at a tenth of the rate, linear warm-up then cosine decay, gradient clipping,
and crops with their density targets from `CrowdCrops` (geometry-adaptive kernels unless the samples say otherwise).
Batch-norm statistics stay the base's (frozen): a handful of frames of one camera would re-estimate them badly.

Augmentation: random scale (0.8-1.2x by default), random crop, horizontal flip, and the photometric jitter of
`counting.training.datasets.photometric_jitter` on every crop (the same camera by day, by night and over a worse
stream).

Each fine-tune's counts are then scaled to its own training frames (`counting.training.count_scale`); see `_tuned`.

Time: 3 folds x `epochs` epochs of ceil(2n/3 / 4) steps, then, when it switches, `epochs` epochs of ceil(n/4) steps,
and about 5n whole-frame counts: for 20 frames and 10 epochs, 170 steps and 100 counts (`make bench` times a job;
docs/operating.md gives measured times and errors).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from counting.engine import configure_threads, frame_density, training_autocast
from counting.images import load_rgb
from counting.models import load_model, save_weights_atomically
from counting.progress import WorkProgress
from counting.training.config import TrainConfig
from counting.training.count_scale import fold_count_scale
from counting.training.datasets import AnnotatedImage, Augmentation, CrowdCrops, GroundTruthCache, collate_crops
from counting.training.evaluate import CountErrors
from counting.training.train import density_loss, learning_rate_at, optimizer_groups, set_train_mode


class CalibrationError(ValueError):
    """A calibration that cannot run or finish: too few frames, no heads, divergence, out of memory."""


@dataclass(frozen=True)
class CalibrationConfig:
    # 10 epochs of 256x256 crops, not the 20 epochs of 384x384 of the one-off probe: 3 folds and the final fine-tune
    # must fit in 5 minutes on 2 CPU cores without bf16 (see the module docstring for the timing).
    epochs: int = 10
    crop: tuple[int, int] = (256, 256)  # height, width; multiples of 8
    batch_size: int = 4
    lr: float = 1e-4
    folds: int = 3  # k-fold held-out measurement
    min_frames: int = 6
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    scale_range: tuple[float, float] = (0.8, 1.2)
    warmup_epochs: int = 2
    weight_decay: float = 1e-4
    head_lr_scale: float = 0.1  # see `counting.training.train.optimizer_groups`
    count_loss_weight: float = 0.1
    photometric: bool = True  # `counting.training.datasets.photometric_jitter` on every crop
    # Fold a count scale fitted on each fine-tune's own training frames into its density head
    # (`counting.training.count_scale`)
    fit_count_scale: bool = True
    bf16: bool | None = None  # bf16 autocast while fine-tuning; None: where the hardware computes it natively
    # Counting (held-out errors, count scale) in the precision the workers count in (as `resolve_precision` takes
    # it): a count scale fitted on bf16 counts was 0.6% off for fp32 workers.
    precision: str = "auto"


@dataclass(frozen=True)
class CalibrationOutcome:
    frames: int
    folds: int
    held_out_mae_before: float  # base weights' MAE on every marked frame (the base never saw them)
    held_out_mae_after: float  # k-fold: each frame predicted by the fine-tune that did not train on it
    switched: bool  # after < before (strictly)
    reason: str
    seconds: float
    per_frame: list[dict]  # {"name", "annotated", "before", "after"}
    weights: Path | None  # the tuned weights written when switched, else None


def fold_indices(frames: int, folds: int, seed: int) -> list[list[int]]:
    """Deal frame indices into `folds` folds by a seeded permutation: every index in exactly one fold."""
    order = np.random.default_rng(seed).permutation(frames).tolist()
    return [sorted(order[fold::folds]) for fold in range(folds)]


def _check(samples: list[AnnotatedImage], config: CalibrationConfig) -> None:
    if len(samples) < config.min_frames:
        raise CalibrationError(
            f"too few marked frames: {len(samples)}, at least {config.min_frames} needed (12 or more advised)"
        )
    if not 2 <= config.folds <= len(samples):
        raise CalibrationError(f"{config.folds} folds cannot split {len(samples)} frames (2 to {len(samples)} folds)")
    if sum(sample.count for sample in samples) == 0:
        raise CalibrationError("no heads marked on any frame: mark the people on the frames first")


def _steps_per_epoch(frames: int, config: CalibrationConfig) -> int:
    return math.ceil(frames / config.batch_size)


def _work_units(frames: int, folds: list[list[int]], config: CalibrationConfig) -> int:
    """The whole job in `WorkProgress` units: every fine-tune's training steps (a step weighs 2) and every frame
    counted (1)."""
    fold_steps = sum(_steps_per_epoch(frames - len(fold), config) for fold in folds) * config.epochs
    final_steps = _steps_per_epoch(frames, config) * config.epochs
    # Counting: every frame before, each fold's held-out frames, and with the count scale every fine-tune's
    # training frames (each frame in k - 1 folds, then all of them for the final fine-tune).
    counted = frames * (2 + (config.folds if config.fit_count_scale else 0))
    return counted + 2 * (fold_steps + final_steps)


@dataclass(frozen=True)
class _Job:
    """What every fine-tune of one calibration starts from and reports to."""

    base: nn.Module  # on `config.device`
    arch: str
    samples: list[AnnotatedImage]
    images: list[np.ndarray]  # each sample's frame, decoded once for all the counting
    cache: GroundTruthCache
    config: CalibrationConfig
    progress: WorkProgress


@contextmanager
def _out_of_memory_is_a_calibration_error(frames: int) -> Iterator[None]:
    """Raise running out of memory, on the host (MemoryError) or on the device (torch's RuntimeError saying so), as
    CalibrationError; every other error passes unchanged."""
    try:
        yield
    except MemoryError as error:
        raise CalibrationError(f"ran out of memory while calibrating on {frames} frames: {error}") from error
    except RuntimeError as error:
        if "out of memory" in str(error).lower():
            raise CalibrationError(
                f"ran out of memory while calibrating on {frames} frames (try a smaller crop or batch): {error}"
            ) from error
        raise


def _fine_tune(job: _Job, samples: list[AnnotatedImage], label: str) -> nn.Module:
    """A copy of `job.base` fine-tuned on `samples`; raises CalibrationError when the loss stops being finite."""
    config = job.config
    model = copy.deepcopy(job.base).to(config.device)
    train_config = TrainConfig(
        arch=job.arch, data=[], out="", weight_decay=config.weight_decay, head_lr_scale=config.head_lr_scale
    )
    optimizer = torch.optim.AdamW(optimizer_groups(model, train_config), lr=config.lr)
    augmentation = Augmentation(config.crop, config.scale_range, photometric=config.photometric)
    dataset = CrowdCrops(samples, augmentation, job.cache, config.seed)
    steps_per_epoch = _steps_per_epoch(len(samples), config)
    total_steps, warmup_steps = steps_per_epoch * config.epochs, steps_per_epoch * config.warmup_epochs
    generator = torch.Generator().manual_seed(config.seed)
    autocast = training_autocast(config.device, config.bf16)
    set_train_mode(model, freeze_batch_norm=True)
    step = 0
    for epoch in range(config.epochs):
        dataset.epoch = epoch
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=RandomSampler(dataset, generator=generator),
            collate_fn=collate_crops,
        )
        for images, targets, _ in loader:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, total_steps, warmup_steps, config.lr) * group["lr_scale"]
            images = images.to(config.device).contiguous(memory_format=torch.channels_last)
            with autocast:
                pred = model(images)
            loss = density_loss(pred.float(), targets.to(config.device), config.count_loss_weight)
            if not torch.isfinite(loss):
                raise CalibrationError(
                    f"diverged: the training loss became {loss.item()} at step {step + 1} ({label}); "
                    f"lower the learning rate ({config.lr:g})"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            step += 1
            job.progress.advance(f"{label}: epoch {epoch + 1}/{config.epochs}, loss {loss.item():.3f}", units=2)
    return model.eval()


def _counts(
    model: nn.Module,
    indices: list[int],
    images: list[np.ndarray],
    config: CalibrationConfig,
    progress: WorkProgress,
    label: str,
) -> dict[int, float]:
    """Each of the frames `indices` counted whole by `model`, as inference counts; raises CalibrationError on a count
    that is not finite."""
    counts = {}
    for index in indices:
        density = frame_density(model, images[index], config.precision, config.device)
        counts[index] = float(density.sum(dtype=np.float64))
        if not math.isfinite(counts[index]):
            raise CalibrationError(f"diverged: {label} counted {counts[index]} people on a frame")
        progress.advance(f"{label}: counted frame {index + 1}")
    return counts


def _tuned(job: _Job, training: list[int], label: str) -> nn.Module:
    """`job.base` fine-tuned on the `training` frames and, with `config.fit_count_scale`, its counts scaled to theirs.

    The training recipe learns where people are better than how much density to put there (it counted about 14%
    under on Part B, see `counting.training.count_scale`), and the base's own count scale, folded into its density
    head, is trained away with it: on 20 Part B frames the fine-tunes counted 10-30% under without this. The factor
    comes from the training frames only, so the held-out frames stay held out.
    """
    model = _fine_tune(job, [job.samples[i] for i in training], label)
    if job.config.fit_count_scale:
        counted = sum(_counts(model, training, job.images, job.config, job.progress, f"{label}, count scale").values())
        annotated = sum(job.samples[i].count for i in training)
        if counted > 0 and annotated > 0:
            fold_count_scale(model, annotated / counted)
    return model


def _held_out_counts(job: _Job, folds: list[list[int]]) -> dict[int, float]:
    """Every frame counted by the fine-tune of the folds it is not in (see the module docstring)."""
    counts: dict[int, float] = {}
    for number, fold in enumerate(folds, start=1):
        training = [index for index in range(len(job.samples)) if index not in fold]
        label = f"fold {number}/{len(folds)}"
        counts |= _counts(_tuned(job, training, label), fold, job.images, job.config, job.progress, label)
    return counts


def _mae(counts: dict[int, float], samples: list[AnnotatedImage]) -> float:
    return CountErrors.of([counts[i] for i in range(len(samples))], [sample.count for sample in samples]).mae


def _save_tuned(job: _Job, out: Path, base_path: Path, mae_before: float, mae_after: float) -> None:
    """Fine-tune on every marked frame and write those weights to `out` atomically, with the calibration's record."""
    final = _tuned(job, list(range(len(job.samples))), "all frames")
    record = {
        "base_weights": str(base_path),
        "frames": [sample.image_path.name for sample in job.samples],
        "folds": job.config.folds,
        "epochs": job.config.epochs,
        "held_out_mae_before": mae_before,
        "held_out_mae_after": mae_after,
    }
    save_weights_atomically(final, job.arch, out, calibration=record)


def calibrate(
    arch: str,
    base_weights: str | Path | None,
    samples: list[AnnotatedImage],
    out: str | Path,
    config: CalibrationConfig = CalibrationConfig(),
    progress: Callable[[float, str], None] | None = None,
) -> CalibrationOutcome:
    """Fine-tune `base_weights` (None: `arch`'s default weights) on `samples` under the k-fold guard described in
    the module docstring; write the tuned weights to `out` only when the held-out error drops.

    `progress(fraction, message)` is called after every training step and every counted frame, the fraction rising
    to 1.0 at the end. Raises CalibrationError for too few frames, no heads, divergence or running out of memory;
    nothing is written then.
    """
    started = time.perf_counter()
    _check(samples, config)
    configure_threads(config.threads)
    torch.manual_seed(config.seed)
    with _out_of_memory_is_a_calibration_error(len(samples)):
        base, arch, base_path = load_model(arch, base_weights)
        folds = fold_indices(len(samples), config.folds, config.seed)
        tracker = WorkProgress(_work_units(len(samples), folds, config), progress)
        images = [load_rgb(sample.image_path) for sample in samples]
        job = _Job(base.to(config.device), arch, samples, images, GroundTruthCache(), config, tracker)
        before = _counts(job.base, list(range(len(samples))), images, config, tracker, "current weights")
        after = _held_out_counts(job, folds)
        mae_before, mae_after = _mae(before, samples), _mae(after, samples)
        switched = mae_after < mae_before
        if switched:
            _save_tuned(job, Path(out), base_path, mae_before, mae_after)
    summary = f"held-out error {mae_before:.1f} -> {mae_after:.1f} on {len(samples)} marked frames"
    reason = f"{summary}: switched" if switched else f"{summary}, not lower: kept the current weights"
    tracker.finish(reason)
    return CalibrationOutcome(
        frames=len(samples),
        folds=config.folds,
        held_out_mae_before=mae_before,
        held_out_mae_after=mae_after,
        switched=switched,
        reason=reason,
        seconds=time.perf_counter() - started,
        per_frame=[
            {"name": sample.image_path.name, "annotated": sample.count, "before": before[i], "after": after[i]}
            for i, sample in enumerate(samples)
        ],
        weights=Path(out) if switched else None,
    )
