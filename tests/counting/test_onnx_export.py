"""ONNX export: onnxruntime on the CPU gives PyTorch's density map (max abs difference under 1e-4) for frames of
any size, with our trained compact CSRNet and with SkyNet-Count; `export --onnx` writes the graph."""

import numpy as np
import pytest
import torch

from counting.cli import main
from counting.engine import frame_density, predict_density
from counting.images import load_rgb
from counting.models import DEFAULT_WEIGHTS, build, load_model
from counting.onnx_export import OnnxCounter, export_onnx, normalised_input
from counting.versions import weights_version


@pytest.fixture(scope="module")
def frame(shanghaitech) -> np.ndarray:
    return load_rgb(shanghaitech / "part_B/test/images/IMG_2.jpg")


def skynet_with_varied_statistics() -> torch.nn.Module:
    """SkyNet-Count with batch-norm statistics and a head bias away from their defaults, so that every layer
    shapes the output (freshly built, it gives almost nothing but zeros)."""
    torch.manual_seed(0)
    model = build("skynet-count")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    model.head.bias.data.fill_(0.05)
    return model.eval()


@pytest.fixture(scope="module", params=["csrnet-lite", "skynet-count"])
def exported(request, tmp_path_factory):
    model = load_model("csrnet-lite")[0] if request.param == "csrnet-lite" else skynet_with_varied_statistics()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return model, OnnxCounter(path)


@pytest.mark.parametrize("crop", [None, (301, 455)])  # the whole 1024x768 frame, and one that needs padding
def test_onnxruntime_gives_the_pytorch_density_map(exported, frame, crop):
    model, counter = exported
    rgb = frame if crop is None else frame[: crop[0], : crop[1]]
    expected = predict_density(model, rgb)
    got = counter.density(rgb)
    assert got.shape == expected.shape == (-(-rgb.shape[0] // 8), -(-rgb.shape[1] // 8))
    assert expected.sum() > 1.0  # a map with something in it
    assert np.abs(got - expected).max() < 1e-4


def test_a_frame_past_the_working_size_is_counted_as_the_engine_counts_it(exported, frame):
    model, counter = exported
    wide = np.ascontiguousarray(np.concatenate([frame[:240]] * 3, axis=1))  # 240 x 3072: shrunk to 160 x 2048
    expected = frame_density(model, wide)
    got = counter.density(wide)
    assert got.shape == expected.shape == (30, 384)
    assert np.abs(got - expected).max() < 1e-4


def test_the_input_is_normalised_and_padded_as_the_engine_pads_it(frame):
    from counting.images import to_input_tensor

    rgb = frame[:301, :455]
    batch = normalised_input(rgb)
    assert batch.shape == (1, 3, 304, 456)
    np.testing.assert_allclose(batch[0, :, :301, :455], to_input_tensor(rgb).numpy(), atol=1e-6)
    assert not batch[0, :, 301:, :].any() and not batch[0, :, :, 455:].any()


def test_export_onnx_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "csrnet-lite.onnx"
    weights = DEFAULT_WEIGHTS["csrnet-lite"]
    assert main(["export", str(weights), str(out), "--onnx"]) == 0
    assert "ONNX" in capsys.readouterr().out
    assert out.stat().st_size > 1_000_000
    # The graph names the weights it came from, so a gateway's results say which weights counted them.
    assert OnnxCounter(out).metadata == {"arch": "csrnet-lite", "weights": weights_version(weights)}


def test_int8_quantisation_keeps_the_count_and_names_its_weights(tmp_path, shanghaitech, frame):
    weights = DEFAULT_WEIGHTS["csrnet-lite"]
    out = tmp_path / "csrnet-lite-int8.onnx"
    calibration = shanghaitech / "part_B"
    assert (
        main(["export", str(weights), str(out), "--int8", "--calibrate", str(calibration), "--calibration-frames", "4"])
        == 0
    )
    int8 = OnnxCounter(out)
    assert int8.metadata == {"arch": "csrnet-lite", "weights": weights_version(weights), "precision": "int8"}
    fp32 = predict_density(load_model("csrnet-lite")[0], frame).sum()
    assert abs(int8.density(frame).sum() - fp32) < 0.05 * fp32  # measured: 0.25% on this frame
    assert out.stat().st_size < weights.stat().st_size  # smaller than even our float16 weights


def test_int8_needs_calibration_frames(tmp_path, capsys):
    assert main(["export", str(DEFAULT_WEIGHTS["csrnet-lite"]), str(tmp_path / "x.onnx"), "--int8"]) == 2
    assert "--int8 needs --calibrate" in capsys.readouterr().err
