"""Architectures by name, and loading and saving their weights (ours, or public CSRNet checkpoints)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy._core.multiarray import scalar
from torch import nn

from counting.csrnet import CSRNet, CSRNetConfig
from counting.layers import DensityHead
from counting.skynet import SkyNet, SkyNetConfig
from counting.specs import CSRNET, CSRNET_HALF, CSRNET_LITE, DEFAULT_ARCH, SKYNET_COUNT

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# One builder for each of counting.specs.ARCHITECTURE_NAMES, in that order.
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    CSRNET: lambda: CSRNet(CSRNetConfig()),
    # 1/4 width with batch norm: the compact CSRNet that a CPU can train from scratch.
    CSRNET_LITE: lambda: CSRNet(CSRNetConfig(width=0.25, batch_norm=True)),
    # 1/2 width: four times csrnet-lite's work, still a fraction of the worker's time budget; started from csrnet-lite
    # weights widened by `counting.csrnet.widen`, since a CPU cannot train it from scratch.
    CSRNET_HALF: lambda: CSRNet(CSRNetConfig(width=0.5, batch_norm=True)),
    # SkyNet's hardware-efficient backbone with a density head, for CPUs and gateways.
    SKYNET_COUNT: lambda: SkyNet(SkyNetConfig(head="density")),
}

# Our own trained weights, used when no --weights is given. An architecture without an entry has none yet.
DEFAULT_WEIGHTS: dict[str, Path] = {
    CSRNET_LITE: WEIGHTS_DIR / "csrnet-lite-mix3.pt",
    SKYNET_COUNT: WEIGHTS_DIR / "skynet-count-shtb.pt",
}


class WeightsError(ValueError):
    """A checkpoint that cannot be loaded into the chosen architecture."""


def build(arch: str) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]()


def density_head(model: nn.Module) -> DensityHead:
    """The 1x1 conv that writes the density map: the model's one `DensityHead`."""
    heads = [module for module in model.modules() if isinstance(module, DensityHead)]
    if len(heads) != 1:
        raise ValueError(f"{type(model).__name__} has no one-channel density head")
    return heads[0]


def default_weights(arch: str) -> Path:
    path = DEFAULT_WEIGHTS.get(arch)
    if path is None or not path.exists():
        raise WeightsError(
            f"there are no trained weights for {arch!r} in this package; pass --weights with a checkpoint "
            f"(trained weights ship for: {', '.join(a for a, p in DEFAULT_WEIGHTS.items() if p.exists()) or 'none'})"
        )
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file as plain data, without running pickled code.

    Public CSRNet `*.pth.tar` files hold `{"state_dict", "optimizer", "epoch", "best_prec1"}`, sometimes with numpy
    scalars inside; those types are allowed, nothing else is.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    # Files written under numpy 1 name the scalar constructor by its old module path.
    safe: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        np.dtype,
        np.dtypes.Float64DType,
        np.dtypes.Float32DType,
    ]
    try:
        with torch.serialization.safe_globals(safe):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a checkpoint
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint: {error}") from error
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
    return checkpoint


def _state_dict_of(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    # Checkpoints saved from nn.DataParallel prefix every key with "module.".
    return {key.removeprefix("module."): value for key, value in state.items() if isinstance(value, torch.Tensor)}


def load_model(arch: str | None = None, weights: str | Path | None = None) -> tuple[nn.Module, str, Path]:
    """Build `arch` and load `weights` (default: our trained weights for it). Returns (model, arch, weights path).

    The architecture recorded in one of our checkpoints wins over a missing `arch`; a public checkpoint is taken as
    full CSRNet unless told otherwise. Any missing, unexpected or mis-shaped tensor is an error that names them.
    """
    path = Path(weights) if weights else default_weights(arch or DEFAULT_ARCH)
    checkpoint = read_checkpoint(path)
    # Public CSRNet checkpoints also have an "arch" entry, holding None or a file path: only our names count.
    recorded = checkpoint.get("arch") if checkpoint.get("arch") in ARCHITECTURES else None
    arch = arch or recorded or CSRNET
    if recorded and recorded != arch:
        raise WeightsError(f"{path} holds {recorded!r} weights, not {arch!r}")
    model = build(arch)
    state = _state_dict_of(checkpoint)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        if unexpected:
            problems.append(
                f"unexpected {len(unexpected)} ({', '.join(unexpected[:4])}{', ...' if len(unexpected) > 4 else ''})"
            )
        if mismatched:
            problems.append("shape mismatch: " + "; ".join(mismatched[:4]))
        raise WeightsError(f"{path} does not fit architecture {arch!r}: " + "; ".join(problems))
    model.load_state_dict({key: value.float() if value.is_floating_point() else value for key, value in state.items()})
    return model.eval(), arch, path


def save_weights(model: nn.Module, arch: str, path: str | Path, half: bool = False, **meta: Any) -> None:
    """Save inference weights: `{"arch", "state_dict", "meta"}`, in float16 when `half` (the file halves)."""
    state = {
        key: value.detach().cpu().half() if half and value.is_floating_point() else value.detach().cpu()
        for key, value in model.state_dict().items()
    }
    torch.save({"arch": arch, "state_dict": state, "meta": meta}, path)


def save_weights_atomically(model: nn.Module, arch: str, out: str | Path, **meta: Any) -> None:
    """`save_weights` to a temporary file beside `out`, then renamed over it: a reader never sees half a file, and a
    failure leaves nothing behind."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        save_weights(model, arch, temporary, **meta)
        temporary.replace(out)
    finally:
        temporary.unlink(missing_ok=True)
