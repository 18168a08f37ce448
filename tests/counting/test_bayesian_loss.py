import pytest
import torch

from counting.training.bayesian_loss import bayesian_loss, cell_centres


def _density_with_mass_at(cells: list[tuple[int, int, float]], height: int = 96, width: int = 128) -> torch.Tensor:
    density = torch.zeros(1, 1, height, width)
    for row, col, mass in cells:
        density[0, 0, row, col] = mass
    return density


def _heads_at(cells: list[tuple[int, int]]) -> torch.Tensor:
    """Pixel (x, y) of the centres of these (row, col) cells."""
    return torch.tensor([[8 * col + 4.0, 8 * row + 4.0] for row, col in cells])


def test_cell_centres_are_the_pixel_centres_of_the_eight_pixel_cells():
    centres = cell_centres(2, 3)
    assert centres.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_one_unit_of_mass_on_each_of_far_apart_heads_costs_nothing():
    heads = [(3, 3), (3, 28), (20, 15)]
    density = _density_with_mass_at([(row, col, 1.0) for row, col in heads])
    assert float(bayesian_loss(density, [_heads_at(heads)])) == pytest.approx(0.0, abs=1e-4)


def test_an_empty_prediction_misses_every_head_by_one():
    heads = [(3, 3), (3, 28), (20, 15), (10, 10)]
    assert float(bayesian_loss(torch.zeros(1, 1, 96, 128), [_heads_at(heads)])) == pytest.approx(4.0)


def test_a_frame_without_heads_costs_its_whole_mass():
    density = _density_with_mass_at([(5, 5, 0.5), (12, 20, 1.5)])
    assert float(bayesian_loss(density, [torch.zeros(0, 2)])) == pytest.approx(2.0)


def test_mass_far_from_every_head_counts_as_background_even_when_the_total_is_right():
    heads = [(3, 3), (20, 28)]
    near = _density_with_mass_at([(3, 4, 1.0), (20, 27, 1.0)])
    far = _density_with_mass_at([(3, 4, 1.0), (12, 15, 1.0)])  # the right total, one head's mass in the wrong place
    points = [_heads_at(heads)]
    assert float(near.sum()) == float(far.sum()) == 2.0
    assert float(bayesian_loss(near, points)) < 0.2
    assert float(bayesian_loss(far, points)) > 1.8


def test_mass_between_two_close_heads_is_shared_by_both():
    heads = [(10, 10), (10, 12)]
    density = _density_with_mass_at([(10, 11, 2.0)])  # midway: half to each head
    assert float(bayesian_loss(density, [_heads_at(heads)])) == pytest.approx(0.0, abs=1e-3)


def test_the_batch_loss_is_the_mean_of_the_frames_and_its_gradient_moves_mass_towards_heads():
    heads = [(6, 6)]
    density = torch.zeros(2, 1, 96, 128, requires_grad=True)
    points = [_heads_at(heads), torch.zeros(0, 2)]
    loss = bayesian_loss(density, points)
    assert float(loss.detach()) == pytest.approx((1.0 + 0.0) / 2)
    loss.backward()
    grad = density.grad[0, 0]
    # Descending the gradient adds mass at the head and none far from it
    assert float(grad[6, 6]) < -0.4
    assert float(grad[20, 28]) == pytest.approx(0.0, abs=1e-6)


def test_without_the_background_far_mass_is_the_nearest_heads():
    heads = [(3, 3), (20, 28)]
    far = _density_with_mass_at([(3, 4, 1.0), (20, 20, 1.0)])  # 64 px from its head: background with it
    points = [_heads_at(heads)]
    assert float(bayesian_loss(far, points)) > 1.8
    assert float(bayesian_loss(far, points, background_ratio=0)) == pytest.approx(0.0, abs=1e-3)
    assert float(bayesian_loss(torch.zeros(1, 1, 96, 128), points, background_ratio=0)) == pytest.approx(2.0)
