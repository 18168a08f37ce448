"""Zones: polygon masks with half-open edges, per-cell coverage, and zone counts that add up."""

import numpy as np
import pytest

from counting.zones import ZoneError, polygon_mask, validate_polygon, zone_counts, zone_coverage


def rectangle(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_a_rectangle_covers_the_pixels_whose_centres_are_inside():
    mask = polygon_mask(rectangle(2, 3, 7, 9), height=10, width=12)
    expected = np.zeros((10, 12), dtype=bool)
    expected[3:9, 2:7] = True
    np.testing.assert_array_equal(mask, expected)


def test_a_polygon_reaching_outside_the_frame_is_clipped():
    mask = polygon_mask(rectangle(-5, -5, 4.2, 3), height=6, width=8)
    expected = np.zeros((6, 8), dtype=bool)
    expected[0:3, 0:4] = True
    np.testing.assert_array_equal(mask, expected)


def test_a_concave_polygon():
    """An L: the notch stays empty."""
    shape = [[0, 0], [4, 0], [4, 2], [2, 2], [2, 4], [0, 4]]
    mask = polygon_mask(shape, height=4, width=4)
    expected = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "split",
    [
        pytest.param((rectangle(0, 0, 8, 16), rectangle(8, 0, 16, 16)), id="vertical-edge-between-pixels"),
        pytest.param((rectangle(0, 0, 8.5, 16), rectangle(8.5, 0, 16, 16)), id="vertical-edge-through-centres"),
        pytest.param((rectangle(0, 0, 16, 7.5), rectangle(0, 7.5, 16, 16)), id="horizontal-edge-through-centres"),
        pytest.param(([[0, 0], [16, 16], [0, 16]], [[0, 0], [16, 0], [16, 16]]), id="diagonal-through-centres"),
        pytest.param(([[0, 0], [16, 0], [7.3, 16], [0, 16]], [[16, 0], [16, 16], [7.3, 16]]), id="slanted"),
    ],
)
def test_polygons_sharing_an_edge_cover_every_pixel_exactly_once(split):
    first, second = split
    covered = polygon_mask(first, 16, 16).astype(int) + polygon_mask(second, 16, 16).astype(int)
    np.testing.assert_array_equal(covered, np.ones((16, 16), dtype=int))


def test_the_whole_frame_covers_every_cell_fully():
    coverage = zone_coverage(rectangle(0, 0, 128, 96), (12, 16))
    assert coverage.shape == (12, 16)
    np.testing.assert_array_equal(coverage, np.ones((12, 16), dtype=np.float32))


def test_a_square_aligned_to_cells_covers_them_fully():
    coverage = zone_coverage(rectangle(8, 8, 24, 24), (4, 4))
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[1:3, 1:3] = 1.0
    np.testing.assert_array_equal(coverage, expected)


def test_a_square_aligned_to_half_cells_gives_exact_fractions():
    """Cells are 8x8: a square from 4 to 20 covers a quarter, a half or all of the cells it touches."""
    coverage = zone_coverage(rectangle(4, 4, 20, 20), (4, 4))
    expected = np.array(
        [
            [0.25, 0.5, 0.25, 0],
            [0.5, 1.0, 0.5, 0],
            [0.25, 0.5, 0.25, 0],
            [0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(coverage, expected)


def test_the_stride_sets_the_cell_size():
    coverage = zone_coverage(rectangle(0, 0, 2, 4), (2, 2), stride=4)
    np.testing.assert_array_equal(coverage, np.array([[0.5, 0], [0, 0]], dtype=np.float32))


def test_zones_tiling_the_frame_add_up_to_the_frame_count():
    density = np.random.default_rng(7).random((12, 16), dtype=np.float32) * 0.1  # a 128x96 frame
    zones = {
        "left-top": [[0, 0], [50.3, 0], [0, 96]],
        "left-bottom": [[50.3, 0], [50.3, 96], [0, 96]],
        "right": rectangle(50.3, 0, 128, 96),
    }
    counts = zone_counts(density, zones)
    assert set(counts) == set(zones)
    assert all(0 < count < density.sum() for count in counts.values())
    assert sum(counts.values()) == pytest.approx(float(density.sum(dtype=np.float64)), rel=1e-6)


def test_a_zone_count_is_the_density_inside_it():
    density = np.zeros((4, 4), dtype=np.float32)
    density[1, 1], density[1, 2], density[3, 3] = 2.0, 4.0, 100.0
    zones = {"cell": rectangle(8, 8, 16, 16), "half": rectangle(16, 8, 20, 16), 3: rectangle(0, 0, 1, 1)}
    counts = zone_counts(density, zones)
    assert counts == {"cell": 2.0, "half": 2.0, 3: 0.0}


def test_a_valid_polygon_becomes_a_float_array():
    points = validate_polygon([[0, 0], [10, 0], [5.5, 8]])
    assert points.dtype == np.float64
    np.testing.assert_array_equal(points, [[0, 0], [10, 0], [5.5, 8]])


@pytest.mark.parametrize(
    "polygon",
    [
        pytest.param([], id="empty"),
        pytest.param([[0, 0], [1, 1]], id="two-points"),
        pytest.param([[0, 0], [1, "a"], [2, 2]], id="non-numeric"),
        pytest.param([[0, 0], [1, None], [2, 2]], id="none"),
        pytest.param([[0, 0], [1, float("nan")], [2, 2]], id="nan"),
        pytest.param([[0, 0], [1, float("inf")], [2, 2]], id="infinite"),
        pytest.param([[0, 0, 0], [1, 1, 1], [2, 2, 2]], id="three-coordinates"),
        pytest.param([[0, 0], [1], [2, 2]], id="ragged"),
        pytest.param("0,0 1,1 2,2", id="a-string"),
    ],
)
def test_a_bad_polygon_is_refused(polygon):
    with pytest.raises(ZoneError):
        validate_polygon(polygon)


def test_a_mask_of_a_bad_polygon_is_refused():
    with pytest.raises(ZoneError):
        polygon_mask([[0, 0], [1, float("nan")], [2, 2]], 4, 4)
