"""Widen a trained CSRNet into a wider one that computes the same density map (Net2WiderNet: Chen, Goodfellow and
Shlens, "Net2Net", ICLR 2016), so a wider model starts where the narrow one's training ended instead of from scratch.

Each conv of the wider model keeps the narrow conv's channels and fills the rest with copies of randomly chosen ones
(with their bias and batch-norm parameters and statistics); the next conv divides each copied channel's incoming
weights by the number of its copies, so its sum is unchanged. Copies would receive the same gradient forever, so a
little noise on their weights (`noise`, relative to the layer's weight spread) lets them learn different features.
"""

from __future__ import annotations

import torch
from torch import nn

from counting.csrnet.model import CSRNet, CSRNetConfig


def _conv_layers(model: CSRNet) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every 3x3 conv of the front and back ends, in order, with the batch norm that follows it (if any)."""
    modules = [*model.frontend, *model.backend]
    layers = []
    for index, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            following = modules[index + 1] if index + 1 < len(modules) else None
            layers.append((module, following if isinstance(following, nn.BatchNorm2d) else None))
    return layers


def _present(tensor: torch.Tensor | None, what: str) -> torch.Tensor:
    """`tensor`, which every layer of a model built by `CSRNet` has; ValueError for one built otherwise."""
    if tensor is None:
        raise ValueError(f"cannot widen a CSRNet without {what}")
    return tensor


@torch.no_grad()
def widen_csrnet(model: CSRNet, width: float, noise: float = 0.01, seed: int = 0) -> CSRNet:
    """A CSRNet of `width` (at least `model`'s) whose output equals `model`'s when `noise` is 0 (up to rounding)."""
    if width < model.config.width:
        raise ValueError(f"cannot widen a CSRNet of width {model.config.width} to the narrower {width}")
    wide = CSRNet(CSRNetConfig(width=width, batch_norm=model.config.batch_norm))
    generator = torch.Generator().manual_seed(seed)
    source = torch.arange(3)  # the wide layer's input channels, as channels of the narrow one's input
    copies = torch.ones(3)
    for (narrow_conv, narrow_norm), (wide_conv, wide_norm) in zip(_conv_layers(model), _conv_layers(wide), strict=True):
        kept, added = narrow_conv.out_channels, wide_conv.out_channels - narrow_conv.out_channels
        chosen = torch.cat([torch.arange(kept), torch.randint(kept, (added,), generator=generator)])
        weight = narrow_conv.weight[chosen][:, source] / copies[source].view(1, -1, 1, 1)
        spread = narrow_conv.weight.std() * noise
        weight[kept:] += spread * torch.randn(weight[kept:].shape, generator=generator)
        wide_conv.weight.copy_(weight)
        _present(wide_conv.bias, "conv biases").copy_(_present(narrow_conv.bias, "conv biases")[chosen])
        if narrow_norm is not None and wide_norm is not None:
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(wide_norm, name).copy_(getattr(narrow_norm, name)[chosen])
            tracked = _present(narrow_norm.num_batches_tracked, "batch-norm statistics")
            _present(wide_norm.num_batches_tracked, "batch-norm statistics").copy_(tracked)
        source, copies = chosen, torch.bincount(chosen, minlength=kept).float()
    wide.output_layer.weight.copy_(model.output_layer.weight[:, source] / copies[source].view(1, -1, 1, 1))
    _present(wide.output_layer.bias, "conv biases").copy_(_present(model.output_layer.bias, "conv biases"))
    return wide.eval()
