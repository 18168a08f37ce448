"""Zone counts: the density map integrated inside polygons drawn in image coordinates.

A density cell covers an 8x8 block of frame pixels. Each cell is weighted by the fraction of its pixels inside the
polygon, so a zone boundary that cuts through a cell takes its share of that cell's people, and zones that tile the
frame add up to the frame's count.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from counting.specs import OUTPUT_STRIDE

Polygon = Sequence[Sequence[float]]


class ZoneError(ValueError):
    """A polygon that cannot describe a zone."""


def validate_polygon(polygon: Polygon) -> np.ndarray:
    """[[x, y], ...] in pixels -> float64 array [N, 2]; at least three finite vertices."""
    try:
        points = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ZoneError(f"a polygon is a list of [x, y] pairs: {error}") from error
    if points.ndim != 2 or points.shape[1] != 2:
        raise ZoneError(f"a polygon is a list of [x, y] pairs, not an array of shape {points.shape}")
    if len(points) < 3:
        raise ZoneError(f"a polygon needs at least 3 vertices, not {len(points)}")
    if not np.isfinite(points).all():
        raise ZoneError("polygon vertices must be finite numbers")
    return points


def polygon_mask(polygon: Polygon, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside `polygon` (even-odd rule), as a bool array [height, width].

    Edges are half-open, so polygons that share an edge share no pixel: zones that tile a frame count each person
    once. (cv2.fillPoly draws its boundary on both sides, which would count the pixels along a shared edge twice.)
    """
    points = validate_polygon(polygon)
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    centres = np.arange(height, dtype=np.float64)[:, None] + 0.5
    crosses = (y0 <= centres) != (y1 <= centres)  # [height, edges]; horizontal edges never cross
    with np.errstate(divide="ignore", invalid="ignore"):
        crossings = np.where(crosses, x0 + (centres - y0) * (x1 - x0) / (y1 - y0), np.inf)
    if crossings.shape[1] % 2:
        crossings = np.pad(crossings, ((0, 0), (0, 1)), constant_values=np.inf)
    crossings.sort(axis=1)
    # Between each pair of crossings, the pixel columns whose centre x + 0.5 lies in [enter, leave).
    enter = np.clip(np.ceil(crossings[:, 0::2] - 0.5), 0, width).astype(np.int64)
    leave = np.clip(np.ceil(crossings[:, 1::2] - 0.5), 0, width).astype(np.int64)
    edges = np.zeros((height, width + 1), dtype=np.int32)
    rows = np.broadcast_to(np.arange(height)[:, None], enter.shape)
    np.add.at(edges, (rows, enter), 1)
    np.add.at(edges, (rows, leave), -1)
    return np.cumsum(edges[:, :width], axis=1) > 0


def zone_coverage(polygon: Polygon, grid_shape: tuple[int, int], stride: int = OUTPUT_STRIDE) -> np.ndarray:
    """The fraction (0..1) of each density cell's pixels that lie inside `polygon`, on a grid of `grid_shape`."""
    rows, cols = grid_shape
    mask = polygon_mask(polygon, rows * stride, cols * stride)
    return mask.reshape(rows, stride, cols, stride).sum(axis=(1, 3), dtype=np.float32) / (stride * stride)


def zone_counts(
    density: np.ndarray, polygons: Mapping[Hashable, Polygon], stride: int = OUTPUT_STRIDE
) -> dict[Hashable, float]:
    """The people inside each named polygon, from a density map at 1/`stride` of the frame."""
    return {
        name: float((density * zone_coverage(polygon, density.shape, stride)).sum(dtype=np.float64))
        for name, polygon in polygons.items()
    }
