"""What counts frames on a gateway: an exported ONNX graph on onnxruntime, or our PyTorch weights on torch, each
loaded only when chosen, behind one small interface (`Counter`) that the agent and the weights fetcher share."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from counting.specs import SKYNET_COUNT


class Counter(Protocol):
    arch: str
    version: str

    def density(self, rgb: np.ndarray) -> np.ndarray: ...


class OnnxModel:
    """An exported graph on onnxruntime: what a gateway without torch runs."""

    def __init__(self, path: Path, threads: int | None) -> None:
        from counting.onnx_export import OnnxCounter
        from counting.versions import weights_version

        self.counter = OnnxCounter(path, threads)
        # The export names the architecture and the weights it came from; a graph from elsewhere is named by itself.
        self.arch = self.counter.metadata.get("arch", path.stem)
        self.version = self.counter.metadata.get("weights") or weights_version(path)

    def density(self, rgb: np.ndarray) -> np.ndarray:
        return self.counter.density(rgb)


class TorchModel:
    """Our PyTorch weights through the counting engine (a gateway with torch, or a CPU server in edge mode)."""

    def __init__(self, path: Path | None, threads: int | None) -> None:
        from counting.engine import CountingEngine, configure_threads
        from counting.versions import weights_version

        configure_threads(threads)
        # Without a weights file, our trained SkyNet-Count: the model sized for a gateway's CPU.
        self.engine = CountingEngine(None if path else SKYNET_COUNT, path)
        self.arch = self.engine.arch
        self.version = weights_version(self.engine.weights)

    def density(self, rgb: np.ndarray) -> np.ndarray:
        return self.engine.density(rgb)


def load_counter(model: str | None, threads: int | None = None) -> Counter:
    """`model`: an .onnx graph (onnxruntime), our .pt weights (torch), or None for our trained SkyNet-Count."""
    path = Path(model) if model else None
    if path is not None and path.suffix == ".onnx":
        return OnnxModel(path, threads)
    return TorchModel(path, threads)
