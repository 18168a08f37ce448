"""Layers shared by the architectures."""

from __future__ import annotations

import torch
from torch import nn


class DensityHead(nn.Conv2d):
    """The 1x1 conv that writes a density map, computed in fp32 even under bf16 autocast.

    A cell's density is a small sum of larger terms of both signs, so rounding the head's weights to bf16 moved
    csrnet-lite's counts by 1-2% against fp32, and differently for every set of weights: a count scale folded into
    the head (`counting.training.count_scale`) changed that rounding and left a calibrated camera's total 2% off. One
    output channel makes the fp32 head's cost nothing beside the backbone.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 1, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        device_type = features.device.type
        if not torch.is_autocast_enabled(device_type):
            return super().forward(features)
        with torch.autocast(device_type, enabled=False):
            return super().forward(features.float())
