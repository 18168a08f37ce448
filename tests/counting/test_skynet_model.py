"""SkyNet: the detector's parameter count as published, the bundles' layout, the reorg's channel order as the
original orders it, and SkyNet-Count's density map at 1/8 of the frame, trainable with the counting library."""

import pytest
import torch
from torch import nn

from counting.models import build
from counting.skynet import SkyNet, SkyNetConfig, reorg


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_detector_has_442049_parameters():
    assert parameters(SkyNet(SkyNetConfig(head="detect"))) == 442_049


def test_skynet_count_swaps_the_detection_head_for_a_density_head():
    count = build("skynet-count")
    assert parameters(count) == 442_049 - 96 * 10 + 96 + 1
    assert isinstance(count.head, nn.Conv2d) and count.head.out_channels == 1


def test_each_bundle_is_depthwise_bn_relu6_pointwise_bn_relu6_without_conv_biases():
    model = SkyNet(SkyNetConfig(head="detect"))
    widths = [(3, 48), (48, 96), (96, 192), (192, 384), (384, 512), (1280, 96)]
    for block, (in_ch, out_ch) in zip([*model.bundles, model.fuse], widths, strict=True):
        depthwise, norm1, act1, pointwise, norm2, act2 = block
        assert (depthwise.kernel_size, depthwise.groups, depthwise.in_channels) == ((3, 3), in_ch, in_ch)
        assert (pointwise.kernel_size, pointwise.out_channels) == ((1, 1), out_ch)
        assert depthwise.bias is None and pointwise.bias is None
        assert isinstance(norm1, nn.BatchNorm2d) and isinstance(norm2, nn.BatchNorm2d)
        assert isinstance(act1, nn.ReLU6) and isinstance(act2, nn.ReLU6)
    assert model.head.bias is None and model.head.out_channels == 10


def test_reorg_orders_channels_as_the_original():
    x = torch.randn(2, 3, 4, 6)
    out = reorg(x)
    assert out.shape == (2, 12, 2, 3)
    channels = x.shape[1]
    for dy in range(2):
        for dx in range(2):
            for c in range(channels):
                torch.testing.assert_close(out[:, (dy * 2 + dx) * channels + c], x[:, c, dy::2, dx::2])


@pytest.mark.parametrize(("height", "width"), [(768, 1024), (240, 320), (100, 130), (8, 8)])
def test_the_density_map_is_an_eighth_of_the_frame(height, width):
    model = build("skynet-count").eval()
    with torch.no_grad():
        density = model(torch.randn(1, 3, height, width))
    assert density.shape == (1, 1, height // 8, width // 8)
    assert (density >= 0).all()


def test_the_detector_predicts_two_anchors_of_five_values_per_cell():
    with torch.no_grad():
        out = SkyNet(SkyNetConfig(head="detect")).eval()(torch.randn(1, 3, 160, 320))
    assert out.shape == (1, 10, 20, 40)


def test_an_unknown_head_is_refused():
    with pytest.raises(ValueError, match="head must be"):
        SkyNet(SkyNetConfig(head="segment"))


def test_skynet_count_never_gives_a_negative_density_at_inference():
    model = build("skynet-count")
    model.head.bias.data.fill_(-1.0)  # a head that would say minus one person a cell
    frame = torch.randn(1, 3, 64, 96)
    assert (model.train()(frame) < 0).any()  # training sees the plain output, whose gradient never dies
    assert model.eval()(frame).min() >= 0
