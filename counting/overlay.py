"""A frame with its density map drawn over it as a colour heatmap, for people to look at."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# Turbo's 256 colours (RGB), indexed by level: a heatmap is one byte per pixel into this palette.
_TURBO = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].copy()


def _levels(density: np.ndarray, height: int, width: int) -> np.ndarray:
    """The density smoothed and stretched to height x width, as 0..1 levels.

    Smoothed on the density's own grid (a Gaussian of one cell) and then stretched linearly: the picture of smoothing at
    full size, for a fiftieth of the pixels. The scale runs from zero to the map's 99.5th percentile, so one hot cell
    does not wash out the rest.
    """
    smooth = cv2.GaussianBlur(density.astype(np.float32), (0, 0), sigmaX=1.0)
    scale = float(np.percentile(smooth, 99.5)) or 1.0
    return cv2.resize(np.clip(smooth / scale, 0.0, 1.0), (width, height), interpolation=cv2.INTER_LINEAR)


def _opacity(level: np.ndarray, opacity: float) -> np.ndarray:
    # Empty areas stay uncoloured so that the scene remains readable.
    return opacity * np.clip(level * 3.0, 0.0, 1.0)


def heatmap_png(density: np.ndarray, height: int, width: int, opacity: float = 0.7) -> bytes:
    """The heatmap alone as a PNG of height x width, transparent where nobody is: to lay over a frame.

    An 8-bit palette image (turbo colours, an alpha per colour): a quarter of the bytes of RGBA to compress, so that
    drawing it costs a worker a fraction of counting the frame."""
    index = (_levels(density, height, width) * 255).astype(np.uint8)
    alpha = (_opacity(np.arange(256) / 255, opacity) * 255).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(_TURBO.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=alpha.tobytes(), compress_level=6)
    return buffer.getvalue()


def heatmap_overlay(
    rgb: np.ndarray, density: np.ndarray, count: float | None = None, opacity: float = 0.55
) -> np.ndarray:
    """RGB uint8 frame + density at any grid -> RGB uint8 frame with a turbo heatmap where people are."""
    height, width = rgb.shape[:2]
    level = _levels(density, height, width)
    colours = _TURBO[(level * 255).astype(np.uint8)]
    alpha = _opacity(level, opacity)[:, :, None]
    blended = (rgb.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha).astype(np.uint8)
    if count is not None:
        label = f"count {count:.1f}"
        scale_text = max(0.6, width / 1200)
        thickness = max(1, round(scale_text * 2))
        cv2.putText(
            blended,
            label,
            (12, round(36 * scale_text)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale_text,
            (0, 0, 0),
            thickness + 3,
            cv2.LINE_AA,
        )
        cv2.putText(
            blended,
            label,
            (12, round(36 * scale_text)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale_text,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return blended


def write_overlay(rgb: np.ndarray, density: np.ndarray, count: float, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = heatmap_overlay(rgb, density, count)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
