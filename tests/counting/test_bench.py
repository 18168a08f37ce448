"""The bench's FLOP count: a multiply-add counts two, and SkyNet-Count needs a fraction of compact CSRNet's."""

import numpy as np
import pytest
from torch import nn

from counting.bench import forward_gflops
from counting.models import build


def test_a_pointwise_conv_costs_two_flops_per_multiply_add():
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert forward_gflops(nn.Conv2d(3, 4, kernel_size=1, bias=False), rgb) == pytest.approx(2 * 3 * 4 * 64 / 1e9)


def test_skynet_count_costs_under_half_of_compact_csrnet():
    rgb = np.zeros((96, 128, 3), np.uint8)
    assert forward_gflops(build("skynet-count"), rgb) < 0.5 * forward_gflops(build("csrnet-lite"), rgb)
