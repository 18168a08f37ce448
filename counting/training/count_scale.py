"""Count-scale calibration: one factor, fitted on a run's own training frames, folded into the density head.

Compact models trained from scratch on a few hundred frames learn where the people are better than how much density
to put there: the run that placed crowds best (lowest GAME) counted 14% under on its training frames and on test
alike. The density head is a 1x1 conv, linear in its weights and bias, so multiplying both by a factor multiplies
every map, and so every count, by exactly that factor; nothing changes at inference.

The factor is the ratio of annotated to counted people over the run's training frames, counted whole as inference
counts them. The validation slice is left out of the fit, so that its figures before and after stay an honest check.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from counting.engine import frame_density
from counting.images import load_rgb
from counting.models import density_head
from counting.training.datasets import AnnotatedImage, load_annotated
from counting.training.evaluate import CountErrors
from counting.training.train import frame_id


@dataclass(frozen=True)
class CountScaleFit:
    scale: float
    frames: int
    annotated: float
    counted: float  # before scaling
    mae_before: float
    mae_after: float


def run_training_frames(run_dir: str | Path) -> tuple[list[AnnotatedImage], list[AnnotatedImage]]:
    """The training frames and the validation slice of the run in `run_dir`, from its `config.json`."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{run_dir} holds no config.json: the count scale is fitted on a training run's own frames")
    config = json.loads(config_path.read_text())
    held_out = set(config["val_images"])
    training: list[AnnotatedImage] = []
    validation: list[AnnotatedImage] = []
    for data in config["data"]:
        for sample in load_annotated(data, "train"):
            (validation if frame_id(data, sample) in held_out else training).append(sample)
    return training, validation


def frame_counts(model: nn.Module, samples: list[AnnotatedImage], device: str = "cpu") -> np.ndarray:
    """Each frame's count in fp32, the whole frame at once as the engine counts it."""
    model = model.to(device).eval()
    densities = (frame_density(model, load_rgb(s.image_path), "fp32", device) for s in samples)
    return np.array([density.sum(dtype=np.float64) for density in densities])


def _annotated_counts(samples: list[AnnotatedImage]) -> np.ndarray:
    return np.array([s.count for s in samples], dtype=np.float64)


def fit_count_scale(model: nn.Module, samples: list[AnnotatedImage], device: str = "cpu") -> CountScaleFit:
    if not samples:
        raise ValueError("no frames to fit the count scale on")
    counted = frame_counts(model, samples, device)
    annotated = _annotated_counts(samples)
    if annotated.sum() == 0:
        raise ValueError(f"the {len(samples)} frames hold no annotated heads to fit the count scale to")
    if counted.sum() <= 0:
        raise ValueError(f"the model counts {counted.sum():.1f} people on {len(samples)} frames; no scale fits that")
    scale = float(annotated.sum() / counted.sum())
    return CountScaleFit(
        scale=scale,
        frames=len(samples),
        annotated=float(annotated.sum()),
        counted=float(counted.sum()),
        mae_before=CountErrors.of(counted, annotated).mae,
        mae_after=CountErrors.of(scale * counted, annotated).mae,
    )


@torch.no_grad()
def fold_count_scale(model: nn.Module, scale: float) -> None:
    """Multiply every density map `model` writes by `scale`, exactly, through its density head's weights and bias."""
    head = density_head(model)
    head.weight.mul_(scale)
    if head.bias is not None:
        head.bias.mul_(scale)


def scale_counts_to_run(model: nn.Module, run_dir: str | Path, device: str = "cpu") -> dict[str, float]:
    """Fit the count scale on the training frames of the run in `run_dir` and fold it into `model`.

    Returns the fit and, where the run held a validation slice out, its MAE before and after: the slice took no part
    in the fit, so it checks it.
    """
    training, validation = run_training_frames(run_dir)
    fit = fit_count_scale(model, training, device)
    report: dict[str, float] = asdict(fit)
    if validation:
        annotated = _annotated_counts(validation)
        counted = frame_counts(model, validation, device)
        report["val_frames"] = len(validation)
        report["val_mae_before"] = CountErrors.of(counted, annotated).mae
        report["val_mae_after"] = CountErrors.of(fit.scale * counted, annotated).mae
    fold_count_scale(model, fit.scale)
    return report
