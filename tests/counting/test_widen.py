import pytest
import torch

from counting.cli import main
from counting.csrnet import CSRNet, CSRNetConfig, widen_csrnet
from counting.models import load_model, save_weights


def _trained_like(width: float = 0.25) -> CSRNet:
    """A csrnet-lite-shaped model with non-trivial weights and batch-norm statistics, as training leaves them."""
    torch.manual_seed(0)
    model = CSRNet(CSRNetConfig(width=width, batch_norm=True))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.output_layer.bias.fill_(0.01)
    return model.eval()


def test_a_widened_model_computes_the_same_density_map():
    narrow = _trained_like()
    wide = widen_csrnet(narrow, 0.5, noise=0.0)
    assert wide.config == CSRNetConfig(width=0.5, batch_norm=True)
    assert sum(p.numel() for p in wide.parameters()) == 4_072_161
    frames = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        torch.testing.assert_close(wide(frames), narrow(frames), rtol=1e-4, atol=1e-5)


def test_noise_sets_the_copies_apart_and_keeps_the_map_close():
    narrow = _trained_like()
    wide = widen_csrnet(narrow, 0.5, noise=0.01, seed=3)
    first = wide.frontend[0].weight
    kept = narrow.frontend[0].out_channels
    torch.testing.assert_close(first[:kept], narrow.frontend[0].weight)  # the narrow channels are kept as they were
    copies_of = [min(range(kept), key=lambda c, w=w: (first[c] - w).abs().sum()) for w in first[kept:]]
    assert all(not torch.equal(first[kept + i], first[c]) for i, c in enumerate(copies_of))
    frames = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        narrow_count, wide_count = narrow(frames).sum(), wide(frames).sum()
    assert abs(wide_count - narrow_count) < 0.1 * abs(narrow_count)
    assert not torch.equal(widen_csrnet(narrow, 0.5, noise=0.01, seed=4).frontend[0].weight, first)


def test_widening_to_a_narrower_model_is_refused():
    with pytest.raises(ValueError, match="narrower"):
        widen_csrnet(_trained_like(0.5), 0.25)


def test_the_widen_command_writes_weights_of_the_wider_architecture(tmp_path, capsys):
    narrow = _trained_like()
    save_weights(narrow, "csrnet-lite", tmp_path / "lite.pt")
    command = ["widen", str(tmp_path / "lite.pt"), str(tmp_path / "half.pt"), "--arch", "csrnet-half", "--noise", "0"]
    assert main(command) == 0
    assert "csrnet-half, 4,072,161 parameters, from csrnet-lite" in capsys.readouterr().out
    wide, arch, _ = load_model(None, tmp_path / "half.pt")
    assert arch == "csrnet-half"
    frames = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(wide(frames), narrow(frames), rtol=1e-4, atol=1e-5)
    save_weights(CSRNet(), "csrnet", tmp_path / "plain.pt", half=True)  # no batch norm
    assert main(["widen", str(tmp_path / "plain.pt"), str(tmp_path / "x.pt"), "--arch", "csrnet-half"]) == 2
    assert "differ in batch norm" in capsys.readouterr().err
    assert main(["widen", str(tmp_path / "lite.pt"), str(tmp_path / "x.pt"), "--arch", "skynet-count"]) == 2
    assert "CSRNet architectures" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
