"""Loading weights: ours, and the public CSRNet checkpoint formats, with clear errors on a mismatch."""

import numpy as np
import pytest
import torch

from counting.csrnet import CSRNet
from counting.models import ARCHITECTURES, WeightsError, build, load_model, save_weights
from counting.specs import ARCHITECTURE_NAMES, OUTPUT_STRIDE


@pytest.fixture(scope="module")
def reference() -> CSRNet:
    torch.manual_seed(1)
    model = CSRNet().eval()
    for param in model.parameters():
        param.data.normal_(0, 0.02)  # distinguishable from a fresh init
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@torch.no_grad()
def test_every_named_architecture_is_built_and_maps_at_the_output_stride():
    """counting.specs tells the web side the names and the stride without torch: they must match the models."""
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES
    for arch in ARCHITECTURE_NAMES:
        density = build(arch).eval()(torch.zeros(1, 3, 64, 96))
        assert density.shape[-2:] == (64 // OUTPUT_STRIDE, 96 // OUTPUT_STRIDE), arch


def test_loads_a_bare_public_state_dict(tmp_path, reference):
    path = tmp_path / "partBmodel.pth"
    torch.save(reference.state_dict(), path)
    model, arch, _ = load_model("csrnet", path)
    assert arch == "csrnet" and _same_weights(model, reference)


# The public training script stores its --pre argument as "arch": None, or the path of the weights it started from.
@pytest.mark.parametrize("recorded_arch", [None, "PartAmodel_best.pth.tar"])
def test_loads_a_public_pth_tar_with_training_state(tmp_path, reference, recorded_arch):
    optimizer = torch.optim.SGD(reference.parameters(), lr=1e-7, momentum=0.95)
    path = tmp_path / "PartBmodel_best.pth.tar"
    torch.save(
        {
            "epoch": 400,
            "arch": recorded_arch,
            "state_dict": reference.state_dict(),
            "best_prec1": np.float64(10.6),
            "optimizer": optimizer.state_dict(),
        },
        path,
    )
    model, arch, _ = load_model(None, path)
    assert arch == "csrnet" and _same_weights(model, reference)
    assert _same_weights(load_model("csrnet", path)[0], reference)


def test_loads_a_data_parallel_checkpoint(tmp_path, reference):
    path = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    assert _same_weights(load_model("csrnet", path)[0], reference)


def test_shape_mismatch_names_the_tensors(tmp_path):
    path = tmp_path / "lite.pth"
    torch.save(build("csrnet-lite").state_dict(), path)
    with pytest.raises(WeightsError, match=r"does not fit architecture 'csrnet'.*(missing|shape)"):
        load_model("csrnet", path)


def test_a_truncated_state_dict_is_refused(tmp_path, reference):
    state = reference.state_dict()
    del state["backend.10.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing 1 \(backend\.10\.weight"):
        load_model("csrnet", path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_model("csrnet", path)
    with pytest.raises(WeightsError, match="no weights file"):
        load_model("csrnet", tmp_path / "absent.pth")


def test_our_checkpoint_records_its_architecture(tmp_path):
    lite = build("csrnet-lite").eval()
    path = tmp_path / "ours.pt"
    save_weights(lite, "csrnet-lite", path, epoch=3)
    model, arch, _ = load_model(None, path)
    assert arch == "csrnet-lite" and _same_weights(model, lite)
    with pytest.raises(WeightsError, match="holds 'csrnet-lite' weights"):
        load_model("csrnet", path)


def test_float16_export_round_trips_within_half_precision(tmp_path, reference):
    path = tmp_path / "half.pt"
    save_weights(reference, "csrnet", path, half=True)
    model, _, _ = load_model(None, path)
    for (key, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert ours.dtype == torch.float32, key
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-4)
    assert path.stat().st_size < 0.6 * 16_263_489 * 4
