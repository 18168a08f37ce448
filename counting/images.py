"""Reading frames and turning them into model input: the one place where preprocessing is defined."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageOps

if TYPE_CHECKING:
    import torch

# Files taken as images wherever frames are read from a folder (data sets, the gateway agent's folder source).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Frames are counted with their longer side at most this many pixels. Past it heads outgrow what the models learned
# (the training frames' heads are a few to about 100 pixels across): a 12-megapixel photo of a few people counted at
# full size gave negative or several-fold counts. Training scales its frames the same way
# (`counting.training.datasets`).
WORKING_SIDE = 2048


class ImageError(ValueError):
    """The input is not a readable image."""


def load_rgb(source: str | Path | bytes) -> np.ndarray:
    """Decode a file path or bytes into an RGB uint8 array [H, W, 3], upright.

    Honours EXIF orientation; greyscale, palette, CMYK and alpha images become RGB; 16-bit images are scaled to
    8 bits instead of being clipped. Raises ImageError for anything Pillow cannot decode, whatever the reason.
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit greyscale (PIL may also open it as 32-bit "I"): always the full 16-bit scale, so that a
                # dark frame stays dark instead of being stretched by its own maximum.
                wide = np.asarray(image, dtype=np.float64)
                grey = np.clip(wide * (255.0 / 65535.0), 0, 255).round().astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.array(image.convert("RGB"))
    except Exception as error:  # Pillow raises many kinds (OSError, ValueError for oversized text chunks, ...)
        name = "the uploaded bytes" if isinstance(source, bytes) else str(source)
        raise ImageError(f"cannot read {name} as an image: {error}") from error


def _upright(image: Image.Image) -> tuple[int, int]:
    """(width, height) after the image's EXIF orientation: orientations 5 to 8 rotate by a quarter turn."""
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
        return height, width
    return width, height


def upright_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as `load_rgb` returns it, i.e. after its EXIF orientation, without decoding."""
    try:
        with Image.open(path) as image:
            return _upright(image)
    except Exception as error:  # as in `load_rgb`
        raise ImageError(f"cannot read {path} as an image: {error}") from error


def decoded_size(data: bytes) -> tuple[int, int]:
    """(width, height) as `load_rgb` would return the image, once all of its data has been decoded: a truncated or
    corrupt file raises ImageError as `load_rgb` would. Nothing is kept: a JPEG is decoded at an eighth of its size,
    which still reads every byte of it but skips most of the work (and no array is made)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = _upright(image)  # before `draft`, which shrinks it
            if image.format == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
            return size
    except Exception as error:  # as in `load_rgb`
        raise ImageError(f"cannot read the uploaded bytes as an image: {error}") from error


def working_scale(height: int, width: int, working_side: int = WORKING_SIDE) -> float:
    """The factor, at most 1, that brings a frame's longer side within `working_side` pixels."""
    return min(1.0, working_side / max(height, width))


def to_working_size(rgb: np.ndarray, working_side: int = WORKING_SIDE) -> np.ndarray:
    """The frame itself when it fits `working_side`, otherwise a copy shrunk to fit (area-averaged)."""
    import cv2

    height, width = rgb.shape[:2]
    scale = working_scale(height, width, working_side)
    if scale == 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def density_on_frame_grid(density: np.ndarray, height: int, width: int, stride: int) -> np.ndarray:
    """A density map counted on a shrunk copy of a `height` x `width` frame, spread over the frame's own grid of
    `stride`-pixel cells with the same total, so zones and heatmaps address it as any other map of the frame."""
    import cv2

    cells = (-(-height // stride), -(-width // stride))
    if density.shape == cells:
        return density
    # float64 in, float64 out: asarray only tells the type checker so (cv2's stub says any number type).
    spread = np.asarray(
        cv2.resize(density.astype(np.float64), (cells[1], cells[0]), interpolation=cv2.INTER_LINEAR), np.float64
    )
    spread *= density.size / spread.size  # each frame cell holds its share of a shrunk cell's people
    # Interpolation at the borders leaves the total off by a fraction of a percent: spread that evenly.
    spread += (density.sum(dtype=np.float64) - spread.sum()) / spread.size
    return spread.astype(np.float32)


def normalise(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> normalised float32 [3, H, W] (ImageNet mean and std, as VGG expects)."""
    mean = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, np.float32)[:, None, None]
    return (rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - mean) / std


def to_input_tensor(rgb: np.ndarray) -> torch.Tensor:
    """`normalise` as a torch tensor. torch is imported here, not above: gateways count with onnxruntime and
    `normalise` alone, without torch installed."""
    import torch

    return torch.from_numpy(normalise(rgb))
