from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from counting.engine import CountingEngine, bf16_is_native, predict_density, predict_density_tiled
from counting.images import load_rgb, to_working_size


class LocalSum(nn.Module):
    """A 'model' whose every output cell depends only on its own 8x8 pixels: tiling must reproduce it exactly."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(images[:, :1] + 3.0, 8)


@pytest.fixture(scope="module")
def engine() -> CountingEngine:
    return CountingEngine(precision="fp32")  # our trained default weights


@pytest.fixture(scope="module")
def frame(shanghaitech) -> np.ndarray:
    return load_rgb(shanghaitech / "part_B/test/images/IMG_12.jpg")


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (301, 457)])
def test_density_covers_the_whole_frame_and_sums_to_the_count(engine, frame, height, width):
    result = engine.count(np.ascontiguousarray(frame[:height, :width]))
    assert result.density.shape == (-(-height // 8), -(-width // 8))
    assert result.density.dtype == np.float32
    assert result.count == pytest.approx(float(result.density.sum(dtype=np.float64)), rel=1e-6)
    assert result.count > 0 and result.ms > 0


def test_tiles_join_without_seams_for_a_local_model():
    rgb = np.random.default_rng(0).integers(0, 256, (1000, 1300, 3), dtype=np.uint8)
    whole = predict_density(LocalSum(), rgb)
    tiled = predict_density_tiled(LocalSum(), rgb, side=400, margin=64)
    np.testing.assert_allclose(tiled, whole, rtol=1e-5)


def test_tiled_count_matches_the_whole_frame(engine, frame):
    whole = predict_density(engine.model, frame)
    tiled = predict_density_tiled(engine.model, frame, side=512, margin=128)
    assert tiled.shape == whole.shape
    assert tiled.sum() == pytest.approx(whole.sum(), rel=0.02)


def test_large_frames_are_counted_in_tiles(engine, frame):
    tiling = CountingEngine(engine.arch, engine.weights, precision="fp32", tile_pixels=500_000)
    np.testing.assert_allclose(tiling.density(frame), predict_density_tiled(engine.model, frame), rtol=1e-5)


def test_a_frame_past_the_working_size_is_counted_shrunk_on_its_own_grid(engine, frame):
    # The 1024x768 frame against a working side of 512: counted at 512x384, the map back on the 1/8 grid of 1024x768.
    small = CountingEngine(engine.arch, engine.weights, precision="fp32", working_side=512)
    result = small.count(frame)
    assert result.density.shape == (96, 128)
    shrunk = predict_density(engine.model, to_working_size(frame, 512))
    assert shrunk.shape == (48, 64)
    assert result.count == pytest.approx(float(shrunk.sum()), rel=1e-5)


def test_bf16_counts_stay_close_to_fp32(engine, shanghaitech):
    # Over Part B test the total moves by about 1% (see the model card); single frames of few people move by more.
    bf16 = CountingEngine(engine.arch, engine.weights, precision="bf16")
    for name in ("IMG_1.jpg", "IMG_50.jpg", "IMG_200.jpg"):
        rgb = load_rgb(shanghaitech / "part_B/test/images" / name)
        assert bf16.count(rgb).count == pytest.approx(engine.count(rgb).count, rel=0.03)


def test_unknown_precision_is_refused(engine):
    with pytest.raises(ValueError, match="precision"):
        CountingEngine(engine.arch, engine.weights, precision="int4")


def test_auto_precision_is_bf16_where_native_and_fp32_elsewhere(engine, frame):
    auto = CountingEngine(engine.arch, engine.weights)
    assert auto.precision == ("bf16" if bf16_is_native("cpu") else "fp32")
    explicit = CountingEngine(engine.arch, engine.weights, precision=auto.precision)
    np.testing.assert_array_equal(auto.density(frame), explicit.density(frame))


def test_bf16_counts_as_native_exactly_where_the_cpu_has_bf16_instructions():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert bf16_is_native("cpu") == bool(flags & {"avx512_bf16", "amx_tile"})
