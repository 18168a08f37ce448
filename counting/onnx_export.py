"""ONNX export of a counting model, and counting with onnxruntime: the same density map as PyTorch, without torch
at inference time (gateways).

The graph takes the normalised frame (ImageNet mean and std, as `counting.images.to_input_tensor` makes it), NCHW
float32, with any height and width that are multiples of 8; it gives the density map at 1/8.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from counting.images import density_on_frame_grid, load_rgb, normalise, to_working_size
from counting.specs import OUTPUT_STRIDE

if TYPE_CHECKING:
    from torch import nn

INPUT_NAME, OUTPUT_NAME = "image", "density"
MAX_SIDE = 8192


def export_onnx(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` (eval mode, fp32) as ONNX with a free height and width; `metadata` (for example the
    architecture and the source weights' version) goes into the file, where `OnnxCounter` reads it back."""
    import torch

    model = model.eval().float()
    sample = torch.zeros(1, 3, 96, 128)
    height = torch.export.Dim("height", min=1, max=MAX_SIDE // OUTPUT_STRIDE)
    width = torch.export.Dim("width", min=1, max=MAX_SIDE // OUTPUT_STRIDE)
    # Sides as multiples of 8 make every pooling exact, so one graph fits every padded frame.
    dynamic = ({2: OUTPUT_STRIDE * height, 3: OUTPUT_STRIDE * width},)  # by position: models name it differently
    path = Path(path)
    program = torch.onnx.export(
        model,
        (sample,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=dynamic,
        dynamo=True,
        verbose=False,
    )
    assert program is not None, "the dynamo exporter always returns its program"
    program.save(str(path))
    if metadata:
        _set_metadata(path, metadata)
    return path


def quantise_int8(fp32_path: str | Path, out_path: str | Path, calibration: list[np.ndarray]) -> Path:
    """Static int8 quantisation of an exported graph (weights per channel, activations per tensor, QDQ format, which
    onnxruntime runs with VNNI int8 kernels), with activation ranges calibrated on `calibration` frames: a camera's
    own frames are best, since the ranges depend on the scene."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantisation needs at least one calibration frame")

    class CalibrationFrames(CalibrationDataReader):
        def __init__(self) -> None:
            self.inputs = iter([{INPUT_NAME: normalised_input(rgb)} for rgb in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.inputs, None)

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # The sides are free: symbolic shape inference cannot resolve them, and the quantiser does not need it.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            CalibrationFrames(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    _set_metadata(out_path, {**_metadata(fp32_path), "precision": "int8"})
    return Path(out_path)


def calibration_frames(path: str | Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` frames, spread evenly, from a folder of images or a ShanghaiTech part (its train split)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of frames")
    if (folder / "train" / "images").is_dir():
        folder = folder / "train" / "images"
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    chosen = images[:: max(1, len(images) // limit)][:limit]
    return [load_rgb(image) for image in chosen]


def _metadata(path: str | Path) -> dict[str, str]:
    import onnx

    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def _set_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    import onnx

    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(path))


def normalised_input(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> [1, 3, H', W'] float32, normalised and padded with the mean colour (zero) to
    multiples of 8: what the exported graph takes."""
    height, width = rgb.shape[:2]
    padded = np.zeros((1, 3, height + -height % OUTPUT_STRIDE, width + -width % OUTPUT_STRIDE), np.float32)
    padded[0, :, :height, :width] = normalise(rgb)
    return padded


class OnnxCounter:
    """Counts frames with an exported model on onnxruntime's CPU provider."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def density(self, rgb: np.ndarray) -> np.ndarray:
        """The frame's density on its own 1/8 grid, counted at the working size as `counting.engine` counts."""
        working = to_working_size(rgb)
        density = self.session.run([OUTPUT_NAME], {INPUT_NAME: normalised_input(working)})[0][0, 0]
        return density_on_frame_grid(density, rgb.shape[0], rgb.shape[1], OUTPUT_STRIDE)
