"""Accuracy on an annotated split: MAE, MSE (root mean squared error, as crowd-counting papers report it) and
GAME(0..3), with the same engine that `count` uses, so per-image counts agree with it exactly."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from counting.images import load_rgb
from counting.specs import OUTPUT_STRIDE
from counting.training.datasets import AnnotatedImage

GAME_LEVELS = (0, 1, 2, 3)


@dataclass(frozen=True)
class CountErrors:
    """How counts miss their annotated counts, as crowd-counting papers report it."""

    mae: float  # mean absolute error
    mse: float  # the papers' "MSE": the root of the mean squared error
    bias: float  # mean signed error: positive counts too many

    @classmethod
    def of(cls, counted: ArrayLike, annotated: ArrayLike) -> CountErrors:
        errors = np.asarray(counted, dtype=np.float64) - np.asarray(annotated, dtype=np.float64)
        if errors.size == 0:
            raise ValueError("no counts to compare")
        return cls(float(np.abs(errors).mean()), float(np.sqrt((errors**2).mean())), float(errors.mean()))


def mix_score(counted: Mapping[str, Sequence[float]], annotated: Mapping[str, Sequence[float]]) -> float:
    """One figure for counts on several sets (by name): the mean over sets of each set's MAE relative to its mean
    annotated count, so that Part A's hundreds of people do not outweigh every other set."""
    relative = [
        CountErrors.of(counted[name], annotated[name]).mae / max(float(np.mean(annotated[name])), 1.0)
        for name in counted
    ]
    return float(np.mean(relative))


@dataclass(frozen=True)
class PairedChange:
    """How one model's counts on a set of frames compare with another's on the same frames."""

    mae_change: float  # candidate MAE minus baseline MAE
    standard_error: float  # of that change: the paired per-frame differences of absolute errors, over sqrt(frames)

    @classmethod
    def of(cls, candidate: ArrayLike, baseline: ArrayLike, annotated: ArrayLike) -> PairedChange:
        truth = np.asarray(annotated, dtype=np.float64)
        differences = np.abs(np.asarray(candidate, dtype=np.float64) - truth) - np.abs(
            np.asarray(baseline, dtype=np.float64) - truth
        )
        if differences.size == 0:
            raise ValueError("no counts to compare")
        if differences.size == 1:  # no spread to judge by: any increase counts as worse
            return cls(float(differences[0]), 0.0)
        return cls(float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(differences.size)))

    @property
    def worse(self) -> bool:
        """The shipping rule's test: the candidate's MAE is higher by more than the standard error."""
        return self.mae_change > self.standard_error


@dataclass(frozen=True)
class ImageResult:
    name: str
    truth: int
    predicted: float
    game: tuple[float, ...]  # absolute error summed over the 4^L regions, L = 0..3
    ms: float


def head_grid(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Annotated heads counted per cell of the 1/8 density grid."""
    rows = np.clip((points[:, 1] // OUTPUT_STRIDE).astype(int), 0, shape[0] - 1)
    cols = np.clip((points[:, 0] // OUTPUT_STRIDE).astype(int), 0, shape[1] - 1)
    grid = np.zeros(shape, dtype=np.float64)
    np.add.at(grid, (rows, cols), 1.0)
    return grid


def grid_absolute_error(predicted: np.ndarray, truth: np.ndarray, level: int) -> float:
    """GAME(L) of one image: |predicted - truth| summed over a 2^L x 2^L grid of regions.

    `truth` holds annotated heads per cell (each head counts in the region it lies in, as GAME is defined).
    Regions are cut on the 1/8 density grid (boundaries rounded to whole cells), where both maps live.
    """
    total = 0.0
    for rows in np.array_split(np.arange(truth.shape[0]), 2**level):
        for cols in np.array_split(np.arange(truth.shape[1]), 2**level):
            block = np.ix_(rows, cols)
            total += abs(float(predicted[block].sum(dtype=np.float64)) - float(truth[block].sum(dtype=np.float64)))
    return total


class DensityModel(Protocol):
    def density(self, rgb: np.ndarray) -> np.ndarray: ...


def evaluate_images(model: DensityModel, samples: list[AnnotatedImage], progress: bool = True) -> list[ImageResult]:
    """Per-image results of `model` (the counting engine, or an exported graph on onnxruntime)."""
    results = []
    for sample in tqdm(samples, desc="evaluate", disable=not progress, leave=False):
        rgb = load_rgb(sample.image_path)
        started = time.perf_counter()
        density = model.density(rgb)
        ms = (time.perf_counter() - started) * 1000
        truth_map = head_grid(sample.points, density.shape)
        game = tuple(grid_absolute_error(density, truth_map, level) for level in GAME_LEVELS)
        count = float(density.sum(dtype=np.float64))  # as CountingEngine.count sums it
        results.append(ImageResult(sample.image_path.name, sample.count, count, game, ms))
    return results


def summarise(results: list[ImageResult]) -> dict[str, float | int]:
    if not results:
        raise ValueError("no images to evaluate")
    errors = CountErrors.of([r.predicted for r in results], [r.truth for r in results])
    summary: dict[str, float | int] = {"images": len(results), "mae": errors.mae, "mse": errors.mse}
    for index, level in enumerate(GAME_LEVELS):
        summary[f"game{level}"] = float(np.mean([r.game[index] for r in results]))
    summary["truth_total"] = int(sum(r.truth for r in results))
    summary["predicted_total"] = float(sum(r.predicted for r in results))
    summary["median_ms"] = float(np.median([r.ms for r in results]))
    return summary


def write_csv(results: list[ImageResult], path: str | Path) -> None:
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "truth", "predicted", "error", *[f"game{level}" for level in GAME_LEVELS], "ms"])
        for r in results:
            writer.writerow(
                [
                    r.name,
                    r.truth,
                    f"{r.predicted:.3f}",
                    f"{r.predicted - r.truth:.3f}",
                    *[f"{g:.3f}" for g in r.game],
                    f"{r.ms:.1f}",
                ]
            )
