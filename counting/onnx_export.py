"""ONNX export of a counting model, and counting with onnxruntime: the same density map as PyTorch, without torch
at inference time (gateways).

The graph takes the normalised frame (ImageNet mean and std, as `counting.images.to_input_tensor` makes it), NCHW
float32, with any height and width that are multiples of 8; it gives the density map at 1/8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from counting.images import normalise

OUTPUT_STRIDE = 8
INPUT_NAME, OUTPUT_NAME = "image", "density"
MAX_SIDE = 8192


def export_onnx(model, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` (eval mode, fp32) as ONNX with a free height and width; `metadata` (for example the
    architecture and the source weights' version) goes into the file, where `OnnxCounter` reads it back."""
    import onnx
    import torch

    model = model.eval().float()
    sample = torch.zeros(1, 3, 96, 128)
    height = torch.export.Dim("height", min=1, max=MAX_SIDE // OUTPUT_STRIDE)
    width = torch.export.Dim("width", min=1, max=MAX_SIDE // OUTPUT_STRIDE)
    # Sides as multiples of 8 make every pooling exact, so one graph fits every padded frame.
    dynamic = ({2: OUTPUT_STRIDE * height, 3: OUTPUT_STRIDE * width},)  # by position: models name it differently
    path = Path(path)
    program = torch.onnx.export(
        model, (sample,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=dynamic, dynamo=True
    )
    program.save(str(path))
    if metadata:
        graph = onnx.load(str(path))
        onnx.helper.set_model_props(graph, metadata)
        onnx.save(graph, str(path))
    return path


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
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: normalised_input(rgb)})[0][0, 0]
