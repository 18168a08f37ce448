"""Checks on an uploaded frame before anything is stored: size, pixel count, and a decode of all its data."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from counting.images import ImageError, decoded_size

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "GIF": "gif"}


class UploadRejected(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    width: int  # upright, after EXIF orientation
    height: int
    extension: str


def check_image(upload: UploadedFile, max_bytes: int, max_pixels: int) -> CheckedImage:
    """The upload's bytes, once they are known to be one whole image of an accepted format and size.

    The pixel count is read from the header before decoding, so a decompression bomb is refused without being
    expanded; then all of its data is decoded (`decoded_size`), which catches truncated and corrupt files.
    """
    if upload.size == 0:
        raise UploadRejected("the image is empty (zero bytes)")
    if upload.size > max_bytes:
        raise UploadRejected(f"the image is {upload.size:,} bytes; the limit is {max_bytes:,}", status=413)
    data = upload.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or ""
            width, height = image.size
    except Image.DecompressionBombError as error:
        raise UploadRejected(f"the image has too many pixels: {error}", status=413) from error
    except UnidentifiedImageError as error:
        raise UploadRejected(f"the file is not an image; send one of {', '.join(EXTENSIONS)}") from error
    except Exception as error:  # Pillow raises many kinds: a PNG text chunk too large to inflate is a ValueError
        raise UploadRejected(f"the image cannot be read: {error}") from error
    if image_format not in EXTENSIONS:
        raise UploadRejected(f"{image_format} images are not accepted; send one of {', '.join(EXTENSIONS)}")
    if width * height > max_pixels:
        raise UploadRejected(
            f"the image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,}", status=413
        )
    try:
        width, height = decoded_size(data)  # upright, as the workers will decode it
    except ImageError as error:
        raise UploadRejected(f"the image cannot be decoded (truncated or corrupt?): {error}") from error
    return CheckedImage(data, hashlib.sha256(data).hexdigest(), width, height, EXTENSIONS[image_format])
