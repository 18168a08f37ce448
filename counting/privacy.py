"""Blurring the people in a frame where its density map shows them, so that a stored frame shows no face.

A CSRNet-family density map puts each head down as a blob about the head's size; where the map, upsampled to the
frame, is above a level, the frame is blurred, and a margin around each such region (about a head's radius) is
blurred too, so that the face below a head point and the edges of a blob are covered. Pixels elsewhere are left
exactly as they were. The blur throws the detail away (the region is rebuilt from a copy a blur cell per sample),
so it cannot be undone by sharpening.

Pure numpy and OpenCV: no torch, no Django.
"""

from __future__ import annotations

import cv2
import numpy as np

from counting.specs import OUTPUT_STRIDE

# The density level, in people per 10,000 pixels (a 100 x 100 square): blurred where the map is above it. On 106
# ShanghaiTech Part B test frames counted with csrnet-lite-mix3, 0.3 with the default margin covers 99.85% of the
# annotated head points (the rest are people the model did not see at all), blurring 55% of those crowded streets.
DEFAULT_LEVEL = 0.3
PIXELS_PER_LEVEL_UNIT = 10_000
# The margin added around each dense region, in pixels: about the radius of a head near the camera at 1024-1280
# pixels wide.
DEFAULT_MARGIN = 16
# Blurred regions keep one sample per blur cell: at least this many pixels, and more in larger frames.
MIN_BLUR_CELL = 16
BLUR_CELLS_ACROSS = 64  # across the frame's longer side


class BlurError(ValueError):
    """The density map or the parameters do not fit the frame."""


def dense_mask(density: np.ndarray, height: int, width: int, level: float, margin: int) -> np.ndarray:
    """Pixels of a `height` x `width` frame to blur, as a bool array: where `density` (people per cell of
    OUTPUT_STRIDE x OUTPUT_STRIDE pixels, on the frame's grid) upsampled to the frame is above `level` people per
    10,000 pixels, grown by `margin` pixels in every direction.

    Raises BlurError when the map is not on the frame's grid, the level is not above zero or the margin is negative.
    """
    cells = (-(-height // OUTPUT_STRIDE), -(-width // OUTPUT_STRIDE))
    if density.ndim != 2 or density.shape != cells:
        raise BlurError(
            f"a density map of a {width}x{height} frame has {cells[0]}x{cells[1]} cells, not shape {density.shape}"
        )
    if not level > 0:  # also refuses NaN
        raise BlurError(f"the density level must be above zero, not {level}")
    if margin < 0:
        raise BlurError(f"the margin must be zero or more pixels, not {margin}")
    # Bilinear on cell centres: a blob's outline follows the map's shape instead of its 8-pixel cells.
    per_pixel = cv2.resize(
        density.astype(np.float32),
        (cells[1] * OUTPUT_STRIDE, cells[0] * OUTPUT_STRIDE),
        interpolation=cv2.INTER_LINEAR,
    )[:height, :width] / np.float32(OUTPUT_STRIDE * OUTPUT_STRIDE)
    mask = (per_pixel > level / PIXELS_PER_LEVEL_UNIT).astype(np.uint8)
    if margin and mask.any():
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        mask = np.asarray(cv2.dilate(mask, disc), dtype=np.uint8)
    return mask.astype(bool)


def blur_cell(height: int, width: int) -> int:
    """The side in pixels of what one sample of a blurred region stands for: MIN_BLUR_CELL, or a BLUR_CELLS_ACROSS-th
    of the longer side in larger frames (20 pixels at 1280 wide), so that a face near the camera is a few samples."""
    return max(MIN_BLUR_CELL, round(max(height, width) / BLUR_CELLS_ACROSS))


def blurred_copy(rgb: np.ndarray) -> np.ndarray:
    """The whole frame blurred past recognising anyone: shrunk to a sample per `blur_cell` (an area average), smoothed
    over a sample, and stretched back, smoothly."""
    height, width = rgb.shape[:2]
    cell = blur_cell(height, width)
    small = cv2.resize(rgb, (max(1, -(-width // cell)), max(1, -(-height // cell))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=1.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def blur_dense_regions(
    rgb: np.ndarray, density: np.ndarray, level: float = DEFAULT_LEVEL, margin: int = DEFAULT_MARGIN
) -> tuple[np.ndarray, float]:
    """A copy of the RGB uint8 frame `rgb` [H, W, 3] with the regions of `dense_mask` blurred (`blurred_copy`), and
    the share of its pixels blurred (0 to 1). Pixels outside the mask are the input's, unchanged; the input is not
    modified. Raises BlurError as `dense_mask` does, and for anything but an RGB uint8 frame."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BlurError(f"the frame must be RGB uint8 [H, W, 3], not {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    mask = dense_mask(density, height, width, level, margin)
    out = rgb.copy()
    if mask.any():
        # OpenCV's masked copy: a fortieth of the time of numpy's boolean indexing at 1280x720.
        out = cv2.copyTo(blurred_copy(rgb), mask.view(np.uint8), out)
    return out, float(mask.mean())
