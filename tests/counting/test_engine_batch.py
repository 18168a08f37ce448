"""Counting frames in batches gives each frame what counting it alone gives: `CountingEngine.count_batch` and the
`FrameBatcher` that gathers the frames of concurrent threads (a GPU worker's) into batches."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from counting.engine import CountingEngine, CountResult, FrameBatcher, predict_density
from counting.images import load_rgb, to_input_tensor

IMAGES = "part_B/test/images"
# fp32 batches must give the maps of frames counted alone to within this share of the map's peak (measured here: 0).
FP32_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def engine() -> CountingEngine:
    return CountingEngine(precision="fp32")  # our trained default weights


@pytest.fixture(scope="module")
def frames(shanghaitech) -> list[np.ndarray]:
    """Six 1024x768 frames of different crowds."""
    return [load_rgb(shanghaitech / IMAGES / f"IMG_{number}.jpg") for number in (1, 2, 3, 12, 50, 200)]


def assert_same_as_alone(engine: CountingEngine, rgb: np.ndarray, batched: CountResult, tolerance: float) -> None:
    alone = engine.count(rgb)
    assert isinstance(batched, CountResult), batched
    assert batched.density.shape == alone.density.shape
    assert batched.density.dtype == np.float32
    worst = float(np.abs(batched.density - alone.density).max())
    assert worst <= tolerance * float(np.abs(alone.density).max()), f"maps differ by up to {worst}"
    assert batched.count == pytest.approx(alone.count, rel=tolerance, abs=1e-3)
    assert batched.count == pytest.approx(float(batched.density.sum(dtype=np.float64)), rel=1e-6)
    assert batched.ms > 0


def test_a_batch_counts_each_frame_as_counting_it_alone(engine, frames):
    batching = CountingEngine(engine.arch, engine.weights, precision="fp32")
    batching.model = RecordingModel(batching.model)

    batched = batching.count_batch(frames)

    assert batching.model.passes == [len(frames)]
    assert len(batched) == len(frames)
    for rgb, result in zip(frames, batched, strict=True):
        assert_same_as_alone(engine, rgb, result, FP32_TOLERANCE)
    assert len({round(result.count, 1) for result in batched}) == len(frames)  # six crowds, not one count six times


def test_a_bf16_batch_counts_as_bf16_alone(engine, frames):
    """Measured here (AMX): identical maps. The tolerance leaves room for devices whose kernels differ with the batch;
    bf16 itself moves counts by about 1% against fp32 (the model card), far more than this."""
    bf16 = CountingEngine(engine.arch, engine.weights, precision="bf16")

    for rgb, result in zip(frames[:3], bf16.count_batch(frames[:3]), strict=True):
        assert_same_as_alone(bf16, rgb, result, 1e-3)


def test_frames_of_different_sizes_are_never_padded_together(engine, frames):
    # 1024x768, 1020x768 (padded to 1024 alone, as the first), 1000x750 and a 1280x720 frame shrunk to fit a working
    # side of 1024, which then counts at 1024x576: four shapes, mixed.
    cropped = np.ascontiguousarray(frames[1][:, :1020])
    smaller = np.ascontiguousarray(frames[2][:750, :1000])
    wide = cv2.resize(frames[3], (1280, 720), interpolation=cv2.INTER_AREA)
    mixed = [frames[0], smaller, cropped, wide, frames[4], smaller[::-1].copy()]
    shrinking = CountingEngine(engine.arch, engine.weights, precision="fp32", working_side=1024)
    shrinking.model = RecordingModel(shrinking.model)

    outcomes = shrinking.count_batch(mixed)

    assert sorted(shrinking.model.passes) == [1, 1, 2, 2]  # one pass per shape
    for rgb, result in zip(mixed, outcomes, strict=True):
        assert_same_as_alone(shrinking, rgb, result, FP32_TOLERANCE)
    assert shrinking.count_batch([wide])[0].density.shape == (90, 160)  # on the frame's own grid, not the working one

    # What the test guards against: padded to its batch-mates' 1024x768, the 1000x750 frame's border cells move.
    padded = F.pad(to_input_tensor(smaller), (0, 24, 0, 18))[None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        together = engine.model(padded)[0, 0, :94, :125].numpy()
    alone = predict_density(engine.model, smaller)
    assert np.abs(together - alone).max() > 100 * FP32_TOLERANCE * np.abs(alone).max()


def test_a_bad_frame_fails_alone_and_its_batch_mates_are_counted(engine, frames):
    grey = frames[1][:, :, 0]  # 2-D: no colour axis
    rgba = np.dstack([frames[2], np.full(frames[2].shape[:2], 255, np.uint8)])
    empty = np.zeros((0, 0, 3), dtype=np.uint8)
    batch = [frames[0], grey, frames[3], rgba, empty, frames[4]]

    outcomes = engine.count_batch(batch)

    for index in (1, 3, 4):
        assert isinstance(outcomes[index], Exception), f"frame {index}: {outcomes[index]}"
    for index in (0, 2, 5):
        assert_same_as_alone(engine, batch[index], outcomes[index], FP32_TOLERANCE)


class RecordingModel(nn.Module):
    """An engine's model, noting how many frames each pass takes; a pass over more than `most` frames fails, as a
    device out of memory would."""

    def __init__(self, model: nn.Module, most: int | None = None) -> None:
        super().__init__()
        self.model, self.most = model, most
        self.passes: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.passes.append(images.shape[0])
        if self.most is not None and images.shape[0] > self.most:
            raise RuntimeError("out of memory (a pass over several frames)")
        return self.model(images)


def test_a_pass_that_fails_is_counted_again_frame_by_frame(engine, frames):
    failing = CountingEngine(engine.arch, engine.weights, precision="fp32")
    failing.model = RecordingModel(failing.model, most=1)

    outcomes = failing.count_batch(frames[:3])

    for rgb, result in zip(frames[:3], outcomes, strict=True):
        assert_same_as_alone(engine, rgb, result, FP32_TOLERANCE)
    assert failing.model.passes[:4] == [3, 1, 1, 1]


def test_frames_over_the_tile_limit_are_counted_alone_in_tiles(engine, frames):
    tiling = CountingEngine(engine.arch, engine.weights, precision="fp32", tile_pixels=500_000)
    small = np.ascontiguousarray(frames[1][:600, :800])  # 480,000 pixels: one pass
    batch = [frames[0], small, frames[2]]

    for rgb, result in zip(batch, tiling.count_batch(batch), strict=True):
        assert_same_as_alone(tiling, rgb, result, FP32_TOLERANCE)


class RecordingEngine(CountingEngine):
    """The default engine, noting the size of each batch it is handed."""

    def __init__(self) -> None:
        super().__init__(precision="fp32")
        self.batches: list[int] = []
        self._noting = threading.Lock()

    def count_batch(self, rgbs):
        with self._noting:
            self.batches.append(len(rgbs))
        return super().count_batch(rgbs)


def test_the_batcher_gathers_the_frames_of_concurrent_threads_into_batches(engine, frames):
    recording = RecordingEngine()
    batcher = FrameBatcher(size=4, wait_seconds=5.0)  # long enough for every thread to hand its frame in
    handed = frames + frames[:2]  # eight frames: two full batches

    with ThreadPoolExecutor(max_workers=len(handed)) as threads:
        results = list(threads.map(lambda rgb: batcher.count(recording, rgb), handed))

    assert sorted(recording.batches) == [4, 4]
    for rgb, result in zip(handed, results, strict=True):
        assert_same_as_alone(engine, rgb, result, FP32_TOLERANCE)


def test_a_frame_alone_is_counted_after_the_wait(engine, frames):
    recording = RecordingEngine()
    result = FrameBatcher(size=16, wait_seconds=0.05).count(recording, frames[0])

    assert recording.batches == [1]
    assert_same_as_alone(engine, frames[0], result, FP32_TOLERANCE)


def test_the_batcher_raises_a_bad_frames_error_in_its_own_thread_only(engine, frames):
    batcher = FrameBatcher(size=3, wait_seconds=5.0)
    handed = [frames[0], frames[1][:, :, 0], frames[2]]

    with ThreadPoolExecutor(max_workers=3) as threads:
        futures = [threads.submit(batcher.count, engine, rgb) for rgb in handed]

    assert isinstance(futures[1].exception(), ValueError)
    assert_same_as_alone(engine, handed[0], futures[0].result(), FP32_TOLERANCE)
    assert_same_as_alone(engine, handed[2], futures[2].result(), FP32_TOLERANCE)


def test_frames_of_different_engines_are_counted_by_their_own(engine, frames):
    shrinking = CountingEngine(engine.arch, engine.weights, precision="fp32", working_side=512)
    batcher = FrameBatcher(size=4, wait_seconds=5.0)
    handed = [(engine, frames[0]), (shrinking, frames[0]), (engine, frames[1]), (shrinking, frames[1])]

    with ThreadPoolExecutor(max_workers=4) as threads:
        results = list(threads.map(lambda pair: batcher.count(*pair), handed))

    for (counter, rgb), result in zip(handed, results, strict=True):
        assert_same_as_alone(counter, rgb, result, FP32_TOLERANCE)
    assert results[0].count != pytest.approx(results[1].count, rel=1e-3)  # the two engines count differently


def test_a_batch_holds_at_least_one_frame():
    with pytest.raises(ValueError, match="at least one"):
        FrameBatcher(size=0, wait_seconds=0.1)
