"""SkyNet (Zhang et al., "SkyNet: a hardware-efficient method for object detection and tracking on embedded
systems", MLSys 2020), in one readable file, with its detection head and with a density head for counting.

The backbone is six bundles, each a 3x3 depthwise conv, batch norm, ReLU6, a 1x1 pointwise conv, batch norm, ReLU6
(convs without bias: the batch norm that follows carries it). Widths 48, 96, 192 with a 2x2 max-pool after each,
then 384 and 512 at stride 8. A bypass takes the 192-channel output (stride 4) through a space-to-depth reorg
(stride 2, 768 channels) and concatenates it with the 512-channel output (1280 channels); a last bundle brings them
to 96. The detector adds a 1x1 conv (no bias) to 2 anchors x 5 values: 442,049 parameters in all.
SkyNet-Count puts a 1x1 density head there instead: a density map at 1/8 of the frame, as CSRNet gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from counting.layers import DensityHead

BACKBONE_WIDTHS = (48, 96, 192, 384, 512)
BYPASS_INDEX = 2  # the 192-channel bundle feeds the reorg bypass
POOLED_BUNDLES = 3  # a 2x2 max-pool after each of the first three bundles
REORG_STRIDE = 2


@dataclass(frozen=True)
class SkyNetConfig:
    head: str = "density"  # "density" (SkyNet-Count) or "detect" (the original detector)
    anchors: int = 2
    fused_width: int = 96  # the bundle after the concatenation


def bundle(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, kernel_size=3, padding=1, groups=in_ch, bias=False),
        nn.BatchNorm2d(in_ch),
        nn.ReLU6(inplace=True),
        nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


def reorg(x: torch.Tensor, stride: int = REORG_STRIDE) -> torch.Tensor:
    """Space-to-depth as the original orders it: output channel (dy * stride + dx) * C + c holds input channel c at
    offset (dy, dx) of each stride x stride cell."""
    n, c, h, w = x.shape
    x = x.view(n, c, h // stride, stride, w // stride, stride)
    return x.permute(0, 3, 5, 1, 2, 4).reshape(n, stride * stride * c, h // stride, w // stride)


class SkyNet(nn.Module):
    def __init__(self, config: SkyNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or SkyNetConfig()
        widths = (3, *BACKBONE_WIDTHS)
        self.bundles = nn.ModuleList(bundle(widths[i], widths[i + 1]) for i in range(len(BACKBONE_WIDTHS)))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        bypass_ch = BACKBONE_WIDTHS[BYPASS_INDEX] * REORG_STRIDE**2
        self.fuse = bundle(BACKBONE_WIDTHS[-1] + bypass_ch, self.config.fused_width)
        if self.config.head == "detect":
            self.head = nn.Conv2d(self.config.fused_width, self.config.anchors * 5, kernel_size=1, bias=False)
        elif self.config.head == "density":
            self.head = DensityHead(self.config.fused_width)
        else:
            raise ValueError(f"head must be 'density' or 'detect', not {self.config.head!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.bundles):
            x = block(x)
            if index == BYPASS_INDEX:
                bypass = x
            if index < POOLED_BUNDLES:
                x = self.pool(x)
        # Where a side is not a multiple of 8, the stride-4 bypass has a row or column the reorg cannot pair: trim it.
        height, width = x.shape[-2:]
        bypass = bypass[..., : height * REORG_STRIDE, : width * REORG_STRIDE]
        out = self.head(self.fuse(torch.cat([x, reorg(bypass)], dim=1)))
        # A ReLU on the density head died in training (every cell at zero within the first epoch at lr 1e-3, and no
        # gradient to bring it back): train on the plain output, whose loss pulls negative cells up to zero anyway,
        # and clamp at inference, where a count must not be negative.
        if self.config.head == "density" and not self.training:
            out = out.clamp_min(0)
        return out
