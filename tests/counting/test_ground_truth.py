"""Ground-truth density maps (counting.training.ground_truth): counts are preserved, pooling is exact, kernels sit at
the heads."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from counting.training.datasets import GroundTruthCache, shanghaitech_split
from counting.training.ground_truth import (
    DEFAULT_SIGMA,
    density_map,
    fixed_sigmas,
    geometry_adaptive_sigmas,
    sum_pool,
)

COUNT_TOLERANCE = 1e-3


def total(density: np.ndarray) -> float:
    return float(density.sum(dtype=np.float64))


def random_points(count: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, width, count), rng.uniform(0, height, count)])


def border_points(height: int, width: int) -> np.ndarray:
    """Corners (exactly on the image's outer edge and on the first and last pixel centres) and edge midpoints."""
    return np.array(
        [
            [0.0, 0.0],
            [width, 0.0],
            [0.0, height],
            [width, height],
            [0.5, 0.5],
            [width - 0.5, 0.5],
            [0.5, height - 0.5],
            [width - 0.5, height - 0.5],
            [width / 2, 0.0],
            [width / 2, height],
            [0.0, height / 2],
            [width, height / 2],
        ]
    )


@pytest.mark.parametrize("cell", [1, 8])
@pytest.mark.parametrize("sigma", [1.0, 4.0, 15.0, 60.0])
def test_fixed_sigma_map_sums_to_count(sigma: float, cell: int) -> None:
    height, width = 77, 131
    points = np.concatenate([random_points(40, height, width, seed=0), border_points(height, width)])
    density = density_map(points, fixed_sigmas(points, sigma), height, width, cell=cell)
    assert density.dtype == np.float32
    assert np.all(density >= 0)
    assert abs(total(density) - len(points)) < COUNT_TOLERANCE


@pytest.mark.parametrize("cell", [1, 8])
def test_adaptive_sigma_map_sums_to_count_with_border_heads(cell: int) -> None:
    height, width = 90, 70
    points = np.concatenate([random_points(25, height, width, seed=1), border_points(height, width)])
    density = density_map(points, geometry_adaptive_sigmas(points), height, width, cell=cell)
    assert abs(total(density) - len(points)) < COUNT_TOLERANCE


@pytest.mark.parametrize("corner", [(0.0, 0.0), (64.0, 0.0), (0.0, 48.0), (64.0, 48.0)])
def test_single_head_at_a_corner_keeps_its_whole_mass(corner: tuple[float, float]) -> None:
    points = np.array([corner])
    density = density_map(points, fixed_sigmas(points), 48, 64)
    assert abs(total(density) - 1.0) < COUNT_TOLERANCE
    # The mass is concentrated at that corner, not spread evenly
    row = 0 if corner[1] == 0 else -1
    col = 0 if corner[0] == 0 else -1
    assert density[row, col] == density.max()


@pytest.mark.parametrize("sigma_kind", ["fixed", "adaptive"])
def test_crowd_of_2000_heads_sums_to_count(sigma_kind: str) -> None:
    height, width = 384, 512
    points = random_points(2000, height, width, seed=2)
    sigmas = fixed_sigmas(points) if sigma_kind == "fixed" else geometry_adaptive_sigmas(points)
    for cell in (1, 8):
        density = density_map(points, sigmas, height, width, cell=cell)
        assert abs(total(density) - 2000) < COUNT_TOLERANCE


def test_head_far_outside_the_image_is_kept_in_the_nearest_cell() -> None:
    points = np.array([[-500.0, 20.0], [10.0, 10.0]])
    density = density_map(points, fixed_sigmas(points, 2.0), 40, 60)
    assert abs(total(density) - 2.0) < COUNT_TOLERANCE
    assert density[:, 0].sum() > 0.99  # the lost head lands in the first column


@pytest.mark.parametrize(
    ("height", "width"),
    [(64, 96), (61, 99), (8, 8), (7, 5), (1, 17), (130, 41)],
)
def test_cell_8_rendering_equals_sum_pooling_the_full_map(height: int, width: int) -> None:
    points = np.concatenate([random_points(30, height, width, seed=height * width), border_points(height, width)])
    sigmas = geometry_adaptive_sigmas(points)
    full = density_map(points, sigmas, height, width, cell=1)
    assert full.shape == (height, width)
    coarse = density_map(points, sigmas, height, width, cell=8)
    pooled = sum_pool(full, 8)
    assert coarse.shape == pooled.shape == (math.ceil(height / 8), math.ceil(width / 8))
    np.testing.assert_allclose(coarse, pooled, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (767, 1023), (769, 1025), (100, 1), (3, 3)])
def test_eighth_map_shape_is_ceiling_of_size_over_8(height: int, width: int) -> None:
    points = np.array([[width / 2, height / 2]])
    density = density_map(points, fixed_sigmas(points), height, width, cell=8)
    assert density.shape == (-(-height // 8), -(-width // 8))
    assert density.shape == (math.ceil(height / 8), math.ceil(width / 8))


def test_sum_pool_preserves_total_and_pools_blocks() -> None:
    values = np.arange(10 * 13, dtype=np.float32).reshape(10, 13)
    pooled = sum_pool(values, 4)
    assert pooled.shape == (3, 4)
    assert pooled[0, 0] == values[:4, :4].sum()
    assert pooled[2, 3] == values[8:, 12:].sum()  # the last partial block
    assert abs(float(pooled.sum()) - float(values.sum())) < 1e-2


def test_adaptive_sigma_is_beta_times_mean_distance_to_three_nearest() -> None:
    # A 3 x 4 rectangle: every corner has neighbours at 3, 4 and 5 -> mean 4 -> sigma 0.3 x 4 = 1.2.
    # A fifth head at (100, 0): its three nearest are (3, 0) at 97, (3, 4) at sqrt(97^2 + 4^2) and (0, 0) at 100.
    # It is farther than 5 from every corner, so the corners' three nearest do not change.
    points = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0], [100.0, 0.0]])
    sigmas = geometry_adaptive_sigmas(points)
    far = 0.3 * (97.0 + math.sqrt(97.0**2 + 16.0) + 100.0) / 3.0
    np.testing.assert_allclose(sigmas, [1.2, 1.2, 1.2, 1.2, far], rtol=1e-12)


def test_adaptive_sigma_with_fewer_than_three_neighbours_uses_those_there_are() -> None:
    np.testing.assert_allclose(geometry_adaptive_sigmas(np.array([[10.0, 10.0], [16.0, 18.0]])), [3.0, 3.0])
    # Three heads on a line at 0, 10, 30: means (10 + 30) / 2, (10 + 20) / 2, (20 + 30) / 2
    line = np.array([[0.0, 0.0], [10.0, 0.0], [30.0, 0.0]])
    np.testing.assert_allclose(geometry_adaptive_sigmas(line), [6.0, 4.5, 7.5])


def test_adaptive_sigma_is_floored_at_one_pixel_for_coincident_heads() -> None:
    points = np.array([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0], [5.0, 5.0]])
    np.testing.assert_allclose(geometry_adaptive_sigmas(points), [1.0, 1.0, 1.0, 1.0])


def test_lone_head_gets_the_default_sigma_15() -> None:
    assert DEFAULT_SIGMA == 15.0
    np.testing.assert_allclose(geometry_adaptive_sigmas(np.array([[12.0, 7.0]])), [15.0])
    np.testing.assert_allclose(fixed_sigmas(np.array([[1.0, 2.0], [3.0, 4.0]])), [15.0, 15.0])
    assert geometry_adaptive_sigmas(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("cell", [1, 8])
def test_empty_point_set_gives_all_zero_map(cell: int) -> None:
    points = np.zeros((0, 2))
    density = density_map(points, geometry_adaptive_sigmas(points), 50, 75, cell=cell)
    assert density.shape == (math.ceil(50 / cell), math.ceil(75 / cell))
    assert density.dtype == np.float32
    assert not density.any()


@pytest.mark.parametrize(("x", "y"), [(30.3, 17.8), (50.5, 40.5), (18.2, 44.25)])
def test_single_gaussian_mass_centre_is_at_the_point(x: float, y: float) -> None:
    height, width = 64, 96  # not square, and x != y, so swapped axes would show
    points = np.array([[x, y]])
    density = density_map(points, fixed_sigmas(points, 3.0), height, width).astype(np.float64)
    rows, cols = np.mgrid[0:height, 0:width]
    mass = density.sum()
    centre_x = float((density * (cols + 0.5)).sum() / mass)  # pixel (i, j) has its centre at (j + 0.5, i + 0.5)
    centre_y = float((density * (rows + 0.5)).sum() / mass)
    assert centre_x == pytest.approx(x, abs=1e-3)
    assert centre_y == pytest.approx(y, abs=1e-3)
    peak_row, peak_col = np.unravel_index(np.argmax(density), density.shape)
    assert (peak_col, peak_row) == (int(x), int(y))


def test_single_gaussian_is_symmetric_about_a_pixel_centre() -> None:
    points = np.array([[20.5, 10.5]])  # centre of pixel (row 10, column 20)
    density = density_map(points, fixed_sigmas(points, 2.0), 21, 41)
    np.testing.assert_allclose(density, density[::-1, ::-1], atol=1e-7)
    assert np.unravel_index(np.argmax(density), density.shape) == (10, 20)


def real_samples(shanghaitech: Path) -> list:
    part_b = shanghaitech_split(shanghaitech / "part_B", "test")
    part_a = shanghaitech_split(shanghaitech / "part_A", "train")
    densest_a = max(part_a, key=lambda sample: sample.count)
    return [*part_b[:3], *part_a[:2], densest_a]


def test_real_shanghaitech_targets_sum_to_head_count(
    shanghaitech: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(tmp_path / "cache"))
    cache = GroundTruthCache()
    samples = real_samples(shanghaitech)
    assert {sample.sigma_mode for sample in samples} == {"fixed", "adaptive"}
    assert max(sample.count for sample in samples) > 3000  # the densest Part A image
    for sample in samples:
        with Image.open(sample.image_path) as image:
            width, height = image.size
        target = cache.target(sample, height, width)
        assert target.shape == (math.ceil(height / 8), math.ceil(width / 8))
        assert abs(total(target) - sample.count) < COUNT_TOLERANCE, sample.image_path.name
    assert len(list((tmp_path / "cache" / "ground-truth").glob("*.npy"))) == len(samples)
