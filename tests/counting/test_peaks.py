"""Head proposals from a density map: as many as it counts, at its peaks, in frame pixels, without torch."""

import subprocess
import sys

import numpy as np
import pytest

from counting.peaks import head_proposals


def blobs(shape: tuple[int, int], centres: list[tuple[float, float]], sigma: float = 0.8) -> np.ndarray:
    """A density map with one unit Gaussian per (row, col) centre."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    density = np.zeros(shape)
    for row, col in centres:
        blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
        density += blob / blob.sum()
    return density


def test_each_head_gets_one_point_near_it_in_frame_pixels():
    centres = [(5, 10), (20, 30), (12, 3.5)]
    points = head_proposals(blobs((30, 40), centres), width=320, height=240)

    assert points.shape == (3, 2)
    expected = np.array([[(col + 0.5) * 8, (row + 0.5) * 8] for row, col in centres])
    for point in expected:
        assert np.min(np.linalg.norm(points - point, axis=1)) < 4  # within half a cell


def test_the_number_follows_the_count_not_the_peaks():
    density = blobs((30, 40), [(5, 10), (20, 30)])
    assert len(head_proposals(density, 320, 240, count=1)) == 1
    assert len(head_proposals(density, 320, 240, count=5)) == 5  # denser than the cells resolve: next highest cells
    assert len(head_proposals(density, 320, 240, count=0.4)) == 0


def test_points_stay_inside_the_frame_and_bad_maps_are_refused():
    density = np.zeros((4, 4))
    density[0, 0] = density[3, 3] = 1.0
    points = head_proposals(density, width=30, height=30)
    assert ((points >= 0) & (points <= 30)).all()
    assert len(head_proposals(np.full((4, 4), np.nan), 30, 30, count=3)) == 0
    with pytest.raises(ValueError, match="2-D"):
        head_proposals(np.zeros(5), 30, 30)


def test_it_does_not_import_torch():
    code = "import sys, counting.peaks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
