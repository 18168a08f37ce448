"""CSRNet (Li, Zhang and Chen, CVPR 2018), configuration B, in one readable file.

Front end: VGG-16 conv1_1..conv4_3 (ten 3x3 convs, ReLU, three 2x2 max-pools), so the density map is 1/8 of the
input. Back end: six 3x3 convs with dilation 2 (512, 512, 512, 256, 128, 64) and a 1x1 output conv.

The module names (`frontend`, `backend`, `output_layer`, and the `nn.Sequential` indices inside them) match the
widely used public PyTorch CSRNet checkpoints, so their state dicts load as they are. `width` scales every
channel count for compact variants; `batch_norm` inserts BN after each conv, which a compact model needs when it
is trained from scratch (the paper's model has none because it starts from ImageNet VGG weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from counting.layers import DensityHead

# "M" marks a 2x2 max-pool; numbers are output channels of a 3x3 conv.
FRONTEND_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
BACKEND_LAYOUT: tuple[int, ...] = (512, 512, 512, 256, 128, 64)


@dataclass(frozen=True)
class CSRNetConfig:
    width: float = 1.0
    batch_norm: bool = False

    def channels(self, full: int) -> int:
        return max(1, round(full * self.width))


def _conv_block(in_ch: int, out_ch: int, dilation: int, batch_norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=dilation, dilation=dilation)
    if batch_norm:
        return [conv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
    return [conv, nn.ReLU(inplace=True)]


class CSRNet(nn.Module):
    def __init__(self, config: CSRNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or CSRNetConfig()
        cfg = self.config

        layers: list[nn.Module] = []
        in_ch = 3
        for item in FRONTEND_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out_ch = cfg.channels(int(item))
                layers += _conv_block(in_ch, out_ch, dilation=1, batch_norm=cfg.batch_norm)
                in_ch = out_ch
        self.frontend = nn.Sequential(*layers)

        layers = []
        for full in BACKEND_LAYOUT:
            out_ch = cfg.channels(full)
            layers += _conv_block(in_ch, out_ch, dilation=2, batch_norm=cfg.batch_norm)
            in_ch = out_ch
        self.backend = nn.Sequential(*layers)

        self.output_layer = DensityHead(in_ch)
        self._init_weights()

    def _init_weights(self) -> None:
        # The reference initialises every conv from N(0, 0.01); with batch norm, He init trains faster.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if self.config.batch_norm:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.output_layer.weight, std=0.01)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] normalised RGB -> density [B, 1, H // 8, W // 8]."""
        return self.output_layer(self.backend(self.frontend(images)))


def init_frontend_from_vgg16(model: CSRNet, vgg16_state: dict[str, torch.Tensor]) -> int:
    """Copy conv weights from a local torchvision VGG-16 state dict (`features.N.*` -> `frontend.N.*`).

    Returns how many tensors were copied. Only a full-width model without batch norm shares VGG-16's layout.
    """
    if model.config.width != 1.0 or model.config.batch_norm:
        raise ValueError("VGG-16 initialisation needs the full-width CSRNet without batch norm")
    frontend_state = model.frontend.state_dict()
    mapped = {}
    for key in frontend_state:
        source = f"features.{key}"
        if source not in vgg16_state:
            raise ValueError(f"VGG-16 state dict has no {source!r}; is it torchvision's vgg16?")
        if vgg16_state[source].shape != frontend_state[key].shape:
            raise ValueError(
                f"{source}: shape {tuple(vgg16_state[source].shape)}, expected {tuple(frontend_state[key].shape)}"
            )
        mapped[key] = vgg16_state[source]
    model.frontend.load_state_dict(mapped, strict=True)
    return len(mapped)
