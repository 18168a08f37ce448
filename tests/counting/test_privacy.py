"""Blurring people where the density map shows them: which pixels, how strongly, and nothing else touched."""

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from counting.engine import CountingEngine
from counting.images import load_rgb
from counting.privacy import (
    DEFAULT_LEVEL,
    DEFAULT_MARGIN,
    BlurError,
    blur_cell,
    blur_dense_regions,
    dense_mask,
)
from counting.specs import OUTPUT_STRIDE
from counting.training.datasets import shanghaitech_split
from counting.training.ground_truth import density_map

HEIGHT, WIDTH = 300, 400
HEAD = (200.0, 150.0)  # x, y
SIGMA = 15.0  # Part B's ground-truth kernel: about a head


def one_head(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """The 1/8 density map of one person at HEAD."""
    return density_map(np.array([HEAD]), np.array([SIGMA]), height, width, cell=OUTPUT_STRIDE)


def textured_frame(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Fine detail everywhere (noise): what a blur must wipe out, and any change outside the mask would show."""
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


def distances_from_head(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return np.hypot(xs - HEAD[0], ys - HEAD[1])


def detail(rgb: np.ndarray, mask: np.ndarray) -> float:
    """The mean absolute Laplacian over `mask`: how much neighbouring pixels differ there."""
    return float(np.abs(cv2.Laplacian(rgb.astype(np.float32), cv2.CV_32F))[mask].mean())


def test_the_mask_is_where_the_density_is_above_the_level():
    """One head of sigma 15 peaks at 1 / (2 pi 15^2) people a pixel, 7.07 per 10,000: above 0.3 within about
    37.7 pixels of its centre (exp(-r^2 / 450) = 0.3 / 7.07), a disc; nothing far from it."""
    mask = dense_mask(one_head(), HEIGHT, WIDTH, level=0.3, margin=0)
    distance = distances_from_head()
    assert mask[distance < 30].all()
    assert not mask[distance > 46].any()
    assert 0.8 < mask.sum() / (np.pi * 37.7**2) < 1.2


def test_the_level_is_in_people_per_10000_pixels():
    # 0.0032 people in each 8x8 cell: 0.5 people per 10,000 pixels everywhere.
    uniform = np.full((-(-HEIGHT // 8), WIDTH // 8), 0.0032, dtype=np.float32)
    assert dense_mask(uniform, HEIGHT, WIDTH, level=0.45, margin=0).all()
    assert not dense_mask(uniform, HEIGHT, WIDTH, level=0.55, margin=0).any()


def test_the_margin_grows_the_mask_by_that_many_pixels_all_round():
    bare = dense_mask(one_head(), HEIGHT, WIDTH, level=DEFAULT_LEVEL, margin=0)
    grown = dense_mask(one_head(), HEIGHT, WIDTH, level=DEFAULT_LEVEL, margin=12)
    distance_to_bare = distance_transform_edt(~bare)
    assert grown[distance_to_bare <= 11.5].all()
    assert not grown[distance_to_bare > 12.5].any()


def test_a_frame_whose_sides_are_not_multiples_of_the_stride():
    height, width = 203, 301
    mask = dense_mask(one_head(height, width), height, width, level=DEFAULT_LEVEL, margin=DEFAULT_MARGIN)
    assert mask.shape == (height, width)
    assert mask[int(HEAD[1]), int(HEAD[0])]


def test_pixels_in_dense_regions_are_blurred_and_all_others_left_exactly():
    rgb = textured_frame()
    before = rgb.copy()
    blurred, share = blur_dense_regions(rgb, one_head())

    mask = dense_mask(one_head(), HEIGHT, WIDTH, DEFAULT_LEVEL, DEFAULT_MARGIN)
    assert share == pytest.approx(mask.mean())
    assert 0.02 < share < 0.3
    np.testing.assert_array_equal(blurred[~mask], rgb[~mask])
    np.testing.assert_array_equal(rgb, before)  # the input is not modified
    # The detail is gone, not softened: the pixel-to-pixel variation inside is under a fiftieth of the noise's.
    assert detail(blurred, mask) < detail(rgb, mask) / 50
    assert np.abs(blurred[mask].astype(int) - rgb[mask]).mean() > 40


def test_a_map_with_nobody_blurs_nothing():
    rgb = textured_frame()
    blurred, share = blur_dense_regions(rgb, np.zeros_like(one_head()))
    assert share == 0.0
    np.testing.assert_array_equal(blurred, rgb)


def test_the_blur_is_coarser_in_larger_frames():
    assert blur_cell(768, 1024) == 16
    assert blur_cell(720, 1280) == 20
    assert blur_cell(2160, 3840) == 60


@pytest.mark.parametrize(
    ("rgb", "density", "level", "margin", "message"),
    [
        (textured_frame(), np.zeros((38, 51), np.float32), 0.3, 16, "has 38x50 cells"),
        (textured_frame(), one_head(), 0.0, 16, "above zero"),
        (textured_frame(), one_head(), float("nan"), 16, "above zero"),
        (textured_frame(), one_head(), 0.3, -1, "zero or more"),
        (textured_frame().astype(np.float32), one_head(), 0.3, 16, "RGB uint8"),
        (textured_frame()[:, :, 0], one_head(), 0.3, 16, "RGB uint8"),
    ],
)
def test_what_does_not_fit_is_refused_with_a_reason(rgb, density, level, margin, message):
    with pytest.raises(BlurError, match=message):
        blur_dense_regions(rgb, density, level, margin)


@pytest.fixture(scope="module")
def engine():
    return CountingEngine(precision="fp32")


def test_the_defaults_cover_the_heads_of_real_street_frames_and_leave_most_of_the_rest(shanghaitech, engine):
    """Our default weights' maps of Part B test frames (23 to 181 people): at the default level and margin, at least
    97% of each frame's annotated heads lie in the blurred regions (any left are people the model missed), while
    most of what lies over 100 pixels from every annotated head is left as it was."""
    frames = {sample.image_path.name: sample for sample in shanghaitech_split(shanghaitech / "part_B", "test")}
    for name in ("IMG_1.jpg", "IMG_10.jpg", "IMG_100.jpg"):
        sample = frames[name]
        rgb = load_rgb(sample.image_path)
        height, width = rgb.shape[:2]
        mask = dense_mask(engine.density(rgb), height, width, DEFAULT_LEVEL, DEFAULT_MARGIN)
        xs = np.clip(sample.points[:, 0].astype(int), 0, width - 1)
        ys = np.clip(sample.points[:, 1].astype(int), 0, height - 1)
        assert mask[ys, xs].mean() >= 0.97, name
        away = np.ones((height, width), dtype=bool)
        away[ys, xs] = False
        far_from_heads = distance_transform_edt(away) > 100
        assert mask[far_from_heads].mean() < 0.4, name
