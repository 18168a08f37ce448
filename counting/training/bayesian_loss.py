"""Bayesian loss (Ma et al., ICCV 2019): supervise counting with the head points themselves, not a Gaussian map.

Each density cell's mass is shared among the heads by the posterior that the cell belongs to head n, from a
Gaussian likelihood around each head (equal priors). A head's expected count is the density mass the posterior gives
it, and its target is 1; a background pseudo-head at distance `d - distance to the nearest head` of each cell takes
the mass far from every head, with target 0 (the paper's BL+; without it, every cell's mass goes to the heads). The
loss is the L1 error of these expected counts, summed per frame.

Unlike the density MSE against fixed-sigma Gaussians, it does not ask the network for one shape per head: in the
far field, where heads are closer together than the Gaussians are wide, the MSE target blurs neighbours into each
other and its optimum is a shape the network cannot read off the pixels. (As a short fine-tune of our MSE-trained
csrnet-lite it drifted to under-counting; its model card has the figures.)
"""

from __future__ import annotations

import torch

from counting.specs import OUTPUT_STRIDE


def cell_centres(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[height * width, 2] (x, y) pixel coordinates of the centres of a 1/8 grid of this many cells."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * OUTPUT_STRIDE
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)


def bayesian_loss(
    density: torch.Tensor, points: list[torch.Tensor], sigma: float = 8.0, background_ratio: float = 0.15
) -> torch.Tensor:
    """Mean over the batch of the per-frame Bayesian loss.

    `density` is [B, 1, H, W] at 1/8 of the crop; `points[b]` holds frame b's heads as [N, 2] (x, y) pixels of the
    crop. The background distance `d` is `background_ratio` times the crop's shorter side, as in the paper; a ratio
    of 0 leaves the background pseudo-head out.
    """
    batch, _, height, width = density.shape
    centres = cell_centres(height, width, density.device)
    d = background_ratio * min(height, width) * OUTPUT_STRIDE
    losses = []
    for frame, heads in zip(density.reshape(batch, -1), points, strict=True):
        if len(heads) == 0:  # all background, which should hold nothing
            losses.append(frame.sum().abs())
            continue
        squared = torch.cdist(heads.to(centres), centres).square()  # [N, cells]
        target = torch.ones(len(heads) + (background_ratio > 0), device=density.device)
        if background_ratio > 0:
            nearest = squared.min(dim=0).values.sqrt()
            squared = torch.cat([squared, (d - nearest).clamp(min=0).square()[None]])
            target[-1] = 0
        posterior = torch.softmax(-squared / (2 * sigma**2), dim=0)  # each cell's mass shared out
        expected = posterior @ frame
        losses.append(torch.abs(expected - target).sum())
    return torch.stack(losses).mean()
