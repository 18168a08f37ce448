"""Head proposals from a density map: its local peaks, as many as the map counts people (numpy and scipy only, so
the web process can propose points for an operator to correct without loading torch)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def head_proposals(density: np.ndarray, width: int, height: int, count: float | None = None) -> np.ndarray:
    """Points [N, 2] as (x, y) in pixels of a `width` x `height` frame whose density map (any stride, for example
    1/8) is `density`; N is round(count) (the map's sum when count is None) or fewer when the map has fewer
    positive cells.

    The threshold is implicit: local maxima of the map (3x3) are taken from the highest down until there are N; where
    a crowd is denser than the map's cells resolve (fewer maxima than N), the next highest cells fill in, so dense
    regions get proportionally many points. Each point sits at its cell's centre shifted to the density's centroid
    over the 3x3 neighbourhood, which puts it between cells when a head straddles them.
    """
    values = np.nan_to_num(np.asarray(density, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a density map must be a non-empty 2-D array, not of shape {values.shape}")
    wanted = round(float(values.sum() if count is None else count))
    positive = values > 0
    if wanted <= 0 or not positive.any():
        return np.zeros((0, 2))
    peak = positive & (values == ndimage.maximum_filter(values, size=3, mode="constant", cval=-np.inf))
    # Peaks first, each group highest first: the top `wanted` cells are the proposals.
    order = np.lexsort((-values.ravel(), ~peak.ravel()))
    chosen = [index for index in order[:wanted] if positive.flat[index]]
    rows, cols = np.unravel_index(np.asarray(chosen, dtype=np.intp), values.shape)
    dy, dx = _centroid_offsets(values, rows, cols)
    scale_x, scale_y = width / values.shape[1], height / values.shape[0]
    x = np.clip((cols + 0.5 + dx) * scale_x, 0, width)
    y = np.clip((rows + 0.5 + dy) * scale_y, 0, height)
    return np.stack([x, y], axis=1)


def _centroid_offsets(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets in cells (within +-1) from each chosen cell's centre to the centroid of the non-negative density in
    its 3x3 neighbourhood."""
    padded = np.pad(np.clip(values, 0, None), 1)
    offsets = np.array([-1, 0, 1])
    # [N, 3, 3] neighbourhoods around each chosen cell (the padding shifts indices by one).
    windows = padded[rows[:, None, None] + 1 + offsets[None, :, None], cols[:, None, None] + 1 + offsets[None, None, :]]
    total = windows.sum(axis=(1, 2))
    total[total == 0] = 1.0
    dy = (windows.sum(axis=2) * offsets).sum(axis=1) / total
    dx = (windows.sum(axis=1) * offsets).sum(axis=1) / total
    return dy, dx
