"""A frame with its density map drawn over it as a colour heatmap, for people to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _levels(density: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The density stretched to the frame and smoothed, as 0..1 levels, with their turbo colours (RGB uint8).

    The colour scale runs from zero to the map's 99.5th percentile, so one hot cell does not wash out the rest.
    """
    # Stretch the grid to the frame: each cell covers 8x8 pixels (the last ones clipped by the frame).
    cell = max(1, round(height / density.shape[0]))
    upsampled = np.kron(density, np.ones((cell, cell), dtype=np.float32))[:height, :width]
    if upsampled.shape != (height, width):
        upsampled = cv2.resize(density, (width, height), interpolation=cv2.INTER_NEAREST)
    smooth = cv2.GaussianBlur(upsampled, (0, 0), sigmaX=cell)
    scale = float(np.percentile(smooth, 99.5)) or 1.0
    level = np.clip(smooth / scale, 0.0, 1.0)
    colours = cv2.cvtColor(cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    return level, colours


def _opacity(level: np.ndarray, opacity: float) -> np.ndarray:
    # Empty areas stay uncoloured so that the scene remains readable.
    return opacity * np.clip(level * 3.0, 0.0, 1.0)


def heatmap_rgba(density: np.ndarray, height: int, width: int, opacity: float = 0.7) -> np.ndarray:
    """The heatmap alone, RGBA uint8 [height, width, 4], transparent where nobody is: to lay over a frame."""
    level, colours = _levels(density, height, width)
    alpha = (_opacity(level, opacity) * 255).astype(np.uint8)
    return np.dstack([colours, alpha])


def heatmap_overlay(
    rgb: np.ndarray, density: np.ndarray, count: float | None = None, opacity: float = 0.55
) -> np.ndarray:
    """RGB uint8 frame + density at any grid -> RGB uint8 frame with a turbo heatmap where people are."""
    height, width = rgb.shape[:2]
    level, colours = _levels(density, height, width)
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
