import pytest
import torch
from torchvision.models import vgg16

from counting.csrnet import CSRNet, CSRNetConfig, init_frontend_from_vgg16

PUBLIC_FRONTEND = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21)
PUBLIC_BACKEND = (0, 2, 4, 6, 8, 10)


def test_state_dict_keys_match_public_checkpoints():
    expected = {f"frontend.{n}.{kind}" for n in PUBLIC_FRONTEND for kind in ("weight", "bias")}
    expected |= {f"backend.{n}.{kind}" for n in PUBLIC_BACKEND for kind in ("weight", "bias")}
    expected |= {"output_layer.weight", "output_layer.bias"}
    assert set(CSRNet().state_dict()) == expected


def test_parameter_count_is_the_papers():
    assert sum(p.numel() for p in CSRNet().parameters()) == 16_263_489


def test_layers_are_config_b():
    model = CSRNet()
    convs = [m for m in model.frontend if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512]
    assert all(c.dilation == (1, 1) and c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.frontend) == 3
    back = [m for m in model.backend if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in back] == [512, 512, 512, 256, 128, 64]
    assert all(c.dilation == (2, 2) and c.padding == (2, 2) for c in back)
    assert model.output_layer.kernel_size == (1, 1) and model.output_layer.out_channels == 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(("height", "width"), [(64, 64), (77, 130), (96, 121)])
def test_output_is_one_eighth_of_the_input(height, width):
    model = CSRNet(CSRNetConfig(width=0.25)).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, height, width))
    assert out.shape == (2, 1, height // 8, width // 8)


def test_width_multiplier_makes_a_compact_model():
    quarter = CSRNet(CSRNetConfig(width=0.25))
    assert quarter.frontend[0].out_channels == 16 and quarter.backend[-2].out_channels == 16
    params = sum(p.numel() for p in quarter.parameters())
    assert 0.9e6 < params < 1.1e6  # about 1/16 of the full model


def test_frontend_initialises_from_a_local_vgg16_state_dict():
    vgg_state = vgg16(weights=None).state_dict()
    model = CSRNet()
    assert init_frontend_from_vgg16(model, vgg_state) == 20
    for n in PUBLIC_FRONTEND:
        assert torch.equal(model.frontend[n].weight, vgg_state[f"features.{n}.weight"])
        assert torch.equal(model.frontend[n].bias, vgg_state[f"features.{n}.bias"])


def test_vgg16_initialisation_refuses_a_compact_model():
    with pytest.raises(ValueError, match="full-width"):
        init_frontend_from_vgg16(CSRNet(CSRNetConfig(width=0.25)), vgg16(weights=None).state_dict())
