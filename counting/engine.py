"""Counting engine: load a model once, then count frames of any size.

`CountingEngine.count(rgb)` returns the count and the density map at 1/8 of the frame (the frame is padded to a
multiple of 8, so the map covers all of it and sums to the count). A frame whose longer side is over `working_side`
is counted on a copy shrunk to fit and its map spread back over the frame's own grid (`counting.images`). Frames over
`tile_pixels` are counted in overlapping tiles: each tile keeps only the cells far enough from its inner edges that
the network saw their whole receptive field, so the stitched map has no seams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from counting.images import WORKING_SIDE, density_on_frame_grid, to_input_tensor, to_working_size
from counting.models import load_model
from counting.specs import OUTPUT_STRIDE

PRECISIONS = ("auto", "fp32", "bf16")
TILE_PIXELS = 4_000_000
TILE_SIDE = 1536
TILE_MARGIN = 192  # half the overlap of neighbouring tiles, about half CSRNet's receptive field; a multiple of 8


@dataclass(frozen=True)
class CountResult:
    count: float
    density: np.ndarray  # float32, [ceil(H/8), ceil(W/8)], sums to count
    ms: float


def configure_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


@cache
def bf16_is_native(device: str = "cpu") -> bool:
    """Whether `device` computes bf16 in hardware (AVX512-BF16 or AMX on a CPU).

    Elsewhere oneDNN emulates it: on an AVX2-only CPU a csrnet-lite forward at 1024x768 took 3.3 s in bf16 against
    0.43 s in fp32, so bf16 is a choice only where this holds.
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def training_precision(device: str, bf16: bool | None) -> str:
    """The precision to train and count in: bf16 where asked (`bf16` True) or native (`bf16` None), else fp32."""
    return "bf16" if (bf16_is_native(device) if bf16 is None else bf16) else "fp32"


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """ "fp32" or "bf16": `precision` itself, or for "auto" bf16 where `device` computes it natively, fp32 elsewhere.

    On 2 cores of a Zen 4 EPYC, bf16 counts a 1024x768 frame with csrnet-lite 2.5x faster than fp32 and moves the
    count by about 0.5% (`make bench` shows both)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return training_precision(device, None) if precision == "auto" else precision


def training_autocast(device: str, bf16: bool | None) -> torch.autocast:
    """The autocast for `training_precision(device, bf16)`: bf16 there, disabled (fp32) otherwise."""
    return torch.autocast(
        device_type=torch.device(device).type,
        dtype=torch.bfloat16,
        enabled=training_precision(device, bf16) == "bf16",
    )


def predict_density(model: nn.Module, rgb: np.ndarray, precision: str = "fp32", device: str = "cpu") -> np.ndarray:
    """One forward pass over a whole frame, padded with the mean colour to a multiple of 8; `precision` as
    `resolve_precision` takes it."""
    bf16 = resolve_precision(precision, device) == "bf16"
    height, width = rgb.shape[:2]
    batch = to_input_tensor(rgb)[None]
    pad_h, pad_w = -height % OUTPUT_STRIDE, -width % OUTPUT_STRIDE
    if pad_h or pad_w:
        batch = F.pad(batch, (0, pad_w, 0, pad_h))  # zero after normalisation is the mean colour
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    with (
        torch.inference_mode(),
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16),
    ):
        density = model(batch)
    return density[0, 0].float().cpu().numpy()


def _tile_starts(length: int, side: int, margin: int) -> list[int]:
    if length <= side:
        return [0]
    step = side - 2 * margin
    starts = [*range(0, length - side, step), length - side]
    return sorted({s - s % OUTPUT_STRIDE for s in starts})


def _owned_cells(starts: list[int], index: int, side: int, tile_cells: int) -> tuple[int, int]:
    """The cells, relative to tile `index` on one axis, that this tile owns: from the midpoint of its overlap with the
    previous tile to the midpoint of its overlap with the next, so every cell comes from exactly one tile."""
    start = starts[index]
    low = 0 if index == 0 else (start + starts[index - 1] + side) // 2 // OUTPUT_STRIDE - start // OUTPUT_STRIDE
    if index == len(starts) - 1:
        return low, tile_cells
    return low, (starts[index + 1] + start + side) // 2 // OUTPUT_STRIDE - start // OUTPUT_STRIDE


def predict_density_tiled(
    model: nn.Module,
    rgb: np.ndarray,
    precision: str = "fp32",
    device: str = "cpu",
    side: int = TILE_SIDE,
    margin: int = TILE_MARGIN,
) -> np.ndarray:
    """Density of a large frame from overlapping `side`-pixel tiles stitched on the 1/8 grid."""
    height, width = rgb.shape[:2]
    cells_h, cells_w = -(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE)
    stitched = np.zeros((cells_h, cells_w), dtype=np.float32)
    ys, xs = _tile_starts(height, side, margin), _tile_starts(width, side, margin)
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            # The last tile of a row or column runs to the frame's edge (its start was rounded down to the grid).
            y_end = height if iy == len(ys) - 1 else y + side
            x_end = width if ix == len(xs) - 1 else x + side
            tile = predict_density(model, rgb[y:y_end, x:x_end], precision, device)
            y0, y1 = _owned_cells(ys, iy, side, tile.shape[0])
            x0, x1 = _owned_cells(xs, ix, side, tile.shape[1])
            gy, gx = y // OUTPUT_STRIDE, x // OUTPUT_STRIDE
            stitched[gy + y0 : gy + y1, gx + x0 : gx + x1] = tile[y0:y1, x0:x1]
    return stitched


def frame_density(
    model: nn.Module,
    rgb: np.ndarray,
    precision: str = "fp32",
    device: str = "cpu",
    tile_pixels: int = TILE_PIXELS,
    working_side: int = WORKING_SIDE,
) -> np.ndarray:
    """The density of a frame of any size on its own 1/8 grid: counted at most `working_side` pixels on its longer
    side, in one forward pass, or in overlapping tiles over `tile_pixels`."""
    working = to_working_size(rgb, working_side)
    if working.shape[0] * working.shape[1] > tile_pixels:
        density = predict_density_tiled(model, working, precision, device)
    else:
        density = predict_density(model, working, precision, device)
    return density_on_frame_grid(density, rgb.shape[0], rgb.shape[1], OUTPUT_STRIDE)


class CountingEngine:
    """A model loaded once, in inference mode and channels-last, ready to count frames in `precision` ("auto": bf16
    where the device computes it natively; `.precision` says which was taken)."""

    def __init__(
        self,
        arch: str | None = None,
        weights: str | Path | None = None,
        precision: str = "auto",
        device: str = "cpu",
        tile_pixels: int = TILE_PIXELS,
        working_side: int = WORKING_SIDE,
    ) -> None:
        self.precision = resolve_precision(precision, device)
        model, self.arch, self.weights = load_model(arch, weights)
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()
        self.device = device
        self.tile_pixels = tile_pixels
        self.working_side = working_side

    def density(self, rgb: np.ndarray) -> np.ndarray:
        return frame_density(self.model, rgb, self.precision, self.device, self.tile_pixels, self.working_side)

    def count(self, rgb: np.ndarray) -> CountResult:
        started = time.perf_counter()
        density = self.density(rgb)
        return CountResult(float(density.sum(dtype=np.float64)), density, (time.perf_counter() - started) * 1000)
