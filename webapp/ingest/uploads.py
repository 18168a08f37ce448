"""Checks on an uploaded frame before anything is stored: size, pixel count, and a decode of all its data; then the
bytes to store, without the metadata a camera or an editor wrote beside the pixels (`image_metadata`)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from counting.images import decoded_size
from webapp.ingest.image_metadata import carries_only_pixels, reencoded

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "GIF": "gif"}


class UploadRejected(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class CheckedImage:
    data: bytes  # what to store: upright, without metadata (the upload itself when it had none)
    sha256: str  # of the upload as sent, so that a frame can be matched with the camera's own file
    width: int  # upright, after EXIF orientation
    height: int
    extension: str


def check_image(upload: UploadedFile, max_bytes: int, max_pixels: int) -> CheckedImage:
    """The image to store for the upload, once it is known to be one whole image of an accepted format and size.

    The pixel count is read from the header before decoding, so a decompression bomb is refused without being
    expanded; then all of its data is decoded, which catches truncated and corrupt files. A JPEG or PNG holding
    nothing but image data is stored as sent (`decoded_size` reads it through); any other image is re-encoded
    upright without its metadata (`reencoded`), so what is stored, served and counted are the same pixels.
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
        if carries_only_pixels(data, image_format):
            stored = data
            width, height = decoded_size(data)  # upright, as the workers will decode it
        else:
            stored, width, height = reencoded(data)
    except Exception as error:  # ImageError from `decoded_size`; Pillow's many kinds from `reencoded`
        raise UploadRejected(f"the image cannot be decoded (truncated or corrupt?): {error}") from error
    return CheckedImage(stored, hashlib.sha256(data).hexdigest(), width, height, EXTENSIONS[image_format])
