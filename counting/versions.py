"""Naming exactly which weights counted a frame, without torch (gateways use it with onnxruntime alone)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def weights_version(path: str | Path) -> str:
    """The weights file's name and the start of its SHA-256, so results say exactly which weights counted them."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"{Path(path).name}@{digest[:12]}"
