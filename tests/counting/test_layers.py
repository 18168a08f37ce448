import pytest
import torch
from torch.nn.functional import conv2d

from counting.layers import DensityHead


def _head_and_features() -> tuple[DensityHead, torch.Tensor]:
    torch.manual_seed(0)
    head = DensityHead(16).eval()
    return head, torch.randn(1, 16, 12, 10)


@pytest.mark.parametrize("features_dtype", [torch.float32, torch.bfloat16])  # a bf16 backbone hands it bf16
def test_the_density_head_counts_in_fp32_under_bf16_autocast(features_dtype):
    head, features = _head_and_features()
    features = features.to(features_dtype)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        density = head(features)
        ordinary = conv2d(features, head.weight, head.bias)
    assert ordinary.dtype == torch.bfloat16  # what autocast makes of an ordinary conv
    assert density.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(density, conv2d(features.float(), head.weight, head.bias))


def test_a_scale_folded_into_the_head_scales_its_bf16_output_exactly():
    head, features = _head_and_features()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = head(features).sum(dtype=torch.float64).item()
        head.weight.mul_(1.37)
        head.bias.mul_(1.37)
        after = head(features).sum(dtype=torch.float64).item()
    assert after == pytest.approx(1.37 * before, rel=1e-5)


def test_without_autocast_the_density_head_is_a_plain_conv():
    head, features = _head_and_features()
    with torch.no_grad():
        torch.testing.assert_close(head(features), conv2d(features, head.weight, head.bias))
