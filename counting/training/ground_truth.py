"""Ground-truth density maps from head points.

Each head is a Gaussian integrated exactly over pixel cells (with the error function) and normalised over the cells
inside the image, so a map sums to the number of heads. Because the Gaussian is separable, a map is one product
`rows^T @ cols` of per-head 1-D profiles, and rendering on a grid of `cell`-pixel cells is exactly the sum-pooling
of the full-resolution map: no resize, no x64 correction.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j+1) x [i, i+1), so its centre is (j+0.5,
i+0.5). ShanghaiTech's annotations are used as they are (see `datasets.shanghaitech_split`).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import erf

GEOMETRY_BETA = 0.3
GEOMETRY_NEIGHBOURS = 3
DEFAULT_SIGMA = 15.0  # the fixed sigma used for ShanghaiTech Part B; also the sigma of a lone head


def fixed_sigmas(points: np.ndarray, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    return np.full(len(points), float(sigma))


def geometry_adaptive_sigmas(
    points: np.ndarray,
    beta: float = GEOMETRY_BETA,
    neighbours: int = GEOMETRY_NEIGHBOURS,
    lone_sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """sigma_i = beta x mean distance from head i to its k nearest heads (k=3 in the CSRNet and MCNN papers).

    With fewer than k other heads, the mean is over the heads there are; a lone head gets `lone_sigma`.
    Coincident heads (distance 0) would give a zero-width kernel, so sigma is floored at one pixel.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) < 2:
        return np.full(len(points), float(lone_sigma))
    k = min(neighbours, len(points) - 1)
    distances, _ = cKDTree(points).query(points, k=k + 1)  # the first neighbour is the point itself
    return np.maximum(beta * distances[:, 1:].mean(axis=1), 1.0)


def _cell_profiles(centres: np.ndarray, sigmas: np.ndarray, length: int, cell: int) -> np.ndarray:
    """Mass of N(centre, sigma) in each of the ceil(length / cell) cells of one axis, normalised to sum 1.

    Returns [heads, cells]. Only the part of the Gaussian inside [0, length) counts, so a head at the border keeps
    its whole mass inside the image.
    """
    edges = np.minimum(np.arange(0, length + cell, cell, dtype=np.float64), length)
    edges = np.unique(edges)
    z = (edges[None, :] - centres[:, None]) / (np.sqrt(2.0) * sigmas[:, None])
    cdf = 0.5 * (1.0 + erf(z))
    mass = np.diff(cdf, axis=1)
    totals = mass.sum(axis=1, keepdims=True)
    # A head so far outside that no mass lands inside: put it in the nearest cell rather than drop it.
    lost = totals[:, 0] <= 1e-12
    if lost.any():
        nearest = np.clip((centres[lost] // cell).astype(int), 0, mass.shape[1] - 1)
        mass[lost] = 0.0
        mass[lost, nearest] = 1.0
        totals[lost] = 1.0
    return mass / totals


def density_map(points: np.ndarray, sigmas: np.ndarray, height: int, width: int, cell: int = 1) -> np.ndarray:
    """Density map of `height x width` pixels, summed over `cell x cell` blocks (cell=8 gives CSRNet's target).

    points: [N, 2] as (x, y) in continuous pixel coordinates; sigmas: [N] in pixels. Returns float32
    [ceil(height / cell), ceil(width / cell)] summing to N.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    rows = -(-height // cell)
    cols = -(-width // cell)
    if len(points) == 0:
        return np.zeros((rows, cols), dtype=np.float32)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    profile_y = _cell_profiles(points[:, 1], sigmas, height, cell)
    profile_x = _cell_profiles(points[:, 0], sigmas, width, cell)
    return (profile_y.T @ profile_x).astype(np.float32)


def sum_pool(density: np.ndarray, factor: int = 8) -> np.ndarray:
    """Sum each `factor x factor` block (the last partial block too): the count is preserved exactly."""
    height, width = density.shape
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.zeros((rows * factor, cols * factor), dtype=np.float64)
    padded[:height, :width] = density
    return padded.reshape(rows, factor, cols, factor).sum(axis=(1, 3)).astype(np.float32)
