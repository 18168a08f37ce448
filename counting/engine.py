"""Counting engine: load a model once, then count frames of any size.

`CountingEngine.count(rgb)` returns the count and the density map at 1/8 of the frame (the frame is padded to a
multiple of 8, so the map covers all of it and sums to the count). A frame whose longer side is over `working_side`
is counted on a copy shrunk to fit and its map spread back over the frame's own grid (`counting.images`). Frames over
`tile_pixels` are counted in overlapping tiles: each tile keeps only the cells far enough from its inner edges that
the network saw their whole receptive field, so the stitched map has no seams.

`CountingEngine.count_batch(rgbs)` counts many frames at once, one forward pass per input shape, each as `count` would;
`FrameBatcher` gathers the frames that concurrent threads count into such batches (a GPU worker's threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
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

log = logging.getLogger(__name__)


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


def predict_densities(
    model: nn.Module, rgbs: Sequence[np.ndarray], precision: str = "fp32", device: str = "cpu"
) -> np.ndarray:
    """One forward pass over frames of one shape, each padded with the mean colour to a multiple of 8 as it would be
    alone; their maps [N, ceil(H/8), ceil(W/8)]. `precision` as `resolve_precision` takes it."""
    bf16 = resolve_precision(precision, device) == "bf16"
    height, width = rgbs[0].shape[:2]
    batch = torch.stack([to_input_tensor(rgb) for rgb in rgbs])
    pad_h, pad_w = -height % OUTPUT_STRIDE, -width % OUTPUT_STRIDE
    if pad_h or pad_w:
        batch = F.pad(batch, (0, pad_w, 0, pad_h))  # zero after normalisation is the mean colour
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    with (
        torch.inference_mode(),
        torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16),
    ):
        density = model(batch)
    return density[:, 0].float().cpu().numpy()


def predict_density(model: nn.Module, rgb: np.ndarray, precision: str = "fp32", device: str = "cpu") -> np.ndarray:
    """One forward pass over a whole frame, padded with the mean colour to a multiple of 8; `precision` as
    `resolve_precision` takes it."""
    return predict_densities(model, [rgb], precision, device)[0]


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

    def count_batch(self, rgbs: Sequence[np.ndarray]) -> list[CountResult | Exception]:
        """Count `rgbs` as `count` counts each of them, with one forward pass over all the frames of one working size:
        for each frame its result, or the exception counting it raised (`asyncio.gather(return_exceptions=True)`
        style), so that a bad frame costs only itself.

        Frames of different sizes are never padded together (padding moves the cells along the border), frames over
        `tile_pixels` are counted one by one in tiles, and the frames of a pass that fails (a frame the network cannot
        take, the device's memory) are counted one by one. A result's `ms` is its share of its pass."""
        outcomes: dict[int, CountResult | Exception] = {}
        passes: dict[tuple, list[tuple[int, np.ndarray]]] = {}
        for index, rgb in enumerate(rgbs):
            try:
                working = to_working_size(rgb, self.working_side)
            except Exception as error:  # whatever a malformed array makes cv2 or numpy raise
                outcomes[index] = error
                continue
            if working.shape[0] * working.shape[1] > self.tile_pixels:
                outcomes[index] = self._count_alone(rgb)
            else:
                # Channels and dtype too: a malformed frame never shares a pass with good ones.
                passes.setdefault((working.shape, working.dtype.str), []).append((index, working))
        for members in passes.values():
            outcomes |= self._count_pass(rgbs, members)
        return [outcomes[index] for index in range(len(rgbs))]

    def _count_pass(
        self, rgbs: Sequence[np.ndarray], members: list[tuple[int, np.ndarray]]
    ) -> dict[int, CountResult | Exception]:
        """One forward pass over `members` (index in `rgbs`, frame at its working size, all of one shape)."""
        started = time.perf_counter()
        try:
            densities = predict_densities(self.model, [working for _, working in members], self.precision, self.device)
        except Exception as error:
            if len(members) == 1:
                return {members[0][0]: error}
            log.warning("a pass over %d frames failed (%s); counting them one by one", len(members), error)
            return {index: self._count_alone(rgbs[index]) for index, _ in members}
        counted = {}
        for (index, _), density in zip(members, densities, strict=True):
            on_grid = density_on_frame_grid(density, rgbs[index].shape[0], rgbs[index].shape[1], OUTPUT_STRIDE)
            counted[index] = (float(on_grid.sum(dtype=np.float64)), on_grid)
        share = (time.perf_counter() - started) * 1000 / len(members)
        height, width = members[0][1].shape[:2]
        log.info("%s counted %d frames of %dx%d in one pass", self.arch, len(members), width, height)
        return {index: CountResult(count, density, share) for index, (count, density) in counted.items()}

    def _count_alone(self, rgb: np.ndarray) -> CountResult | Exception:
        try:
            return self.count(rgb)
        except Exception as error:  # kept for this frame alone, as in `count_batch`
            return error


@dataclass
class _Gathering:
    """The frames handed in for one batch, each with the engine that counts it, and then what became of each."""

    frames: list[tuple[CountingEngine, np.ndarray]] = field(default_factory=list)
    outcomes: list[CountResult | Exception] = field(default_factory=list)
    counted: threading.Event = field(default_factory=threading.Event)


class FrameBatcher:
    """Counts the frames that concurrent threads hand in, in batches of up to `size`: the first frame of a batch waits
    at most `wait_seconds` for others to join it (and, while the batch before is being counted, for as long as that
    takes); then each engine's frames are counted by its `count_batch`, one batch at a time. Each thread gets its own
    frame's result, or its own frame's error, as if it had counted the frame alone."""

    def __init__(self, size: int, wait_seconds: float) -> None:
        if size < 1:
            raise ValueError(f"a batch holds at least one frame, not {size}")
        self.size = size
        self.wait_seconds = wait_seconds
        self._joined = threading.Condition()
        self._open: _Gathering | None = None
        self._counting = threading.Lock()  # one batch on the device at a time: its memory is sized for one

    def count(self, engine: CountingEngine, rgb: np.ndarray) -> CountResult:
        """`engine.count(rgb)`, counted in a batch with the frames other threads hand in meanwhile."""
        with self._joined:
            gathering = self._open
            leads = gathering is None
            if gathering is None:
                gathering = self._open = _Gathering()
            position = len(gathering.frames)
            gathering.frames.append((engine, rgb))
            if len(gathering.frames) == self.size:
                self._open = None  # full: the next frame opens another batch
                self._joined.notify_all()
        if leads:
            self._count(gathering)
        gathering.counted.wait()
        outcome = gathering.outcomes[position]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _count(self, gathering: _Gathering) -> None:
        """Run by the thread whose frame opened `gathering`: wait for it to fill, then count it for every thread."""
        with self._joined:
            self._joined.wait_for(lambda: self._open is not gathering, timeout=self.wait_seconds)
        with self._counting:
            with self._joined:
                if self._open is gathering:
                    self._open = None
            frames = gathering.frames
            outcomes: list[CountResult | Exception] = [RuntimeError("its batch was not counted") for _ in frames]
            try:
                outcomes = _count_gathered(frames)
            except Exception as error:  # a fault of the whole batch, not of a frame (those are in `outcomes`)
                log.exception("a batch of %d frames was not counted", len(frames))
                outcomes = [RuntimeError(f"its batch was not counted: {error!r}") for _ in frames]
            finally:  # the other threads wait for this whatever happens
                gathering.outcomes = outcomes
                gathering.counted.set()


def _count_gathered(frames: list[tuple[CountingEngine, np.ndarray]]) -> list[CountResult | Exception]:
    """Each engine's frames in one `count_batch`; the outcomes in the order of `frames`."""
    by_engine: dict[int, list[int]] = {}
    for position, (engine, _) in enumerate(frames):
        by_engine.setdefault(id(engine), []).append(position)
    outcomes: dict[int, CountResult | Exception] = {}
    for positions in by_engine.values():
        engine = frames[positions[0]][0]
        counted = engine.count_batch([frames[position][1] for position in positions])
        outcomes |= dict(zip(positions, counted, strict=True))
    return [outcomes[position] for position in range(len(frames))]
