"""Privacy of stored frames: a camera with `blur_heads` on keeps its frames blurred wherever the worker's density map
shows people (counting.privacy), and no frame of it is shown before that.

Whether a stored frame is blurred is written in its file's name (`-blurred` before the extension), so the name and the
content change together and nothing else must be kept in step: a frame counted before its camera turned blurring on
stays unblurred, and unshown, under its old name. The worker counts the frame as uploaded, writes the blurred copy
under a new name, and switches the frame to it in the transaction that stores the result (store_result); the upload
is deleted after the commit. Until then the frame's image is withheld from pages, the API and emails (`image_shown`).
The same transaction records the upload as a ReplacedUpload: where its delete fails or never runs (the worker died
just after the commit), the beat's sweep (`sweep_replaced_uploads`) deletes it within minutes.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath

import numpy as np
from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from PIL import Image

from counting.privacy import blur_dense_regions
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame, ReplacedUpload
from webapp.ingest.storage import write_media_file
from webapp.ingest.uploads import EXTENSIONS

# In a stored frame's name: uploads are named `<hash>-<token>-frame.<ext>`, so no upload carries it.
BLURRED_MARK = "-blurred"
# The formats frames are uploaded in, by their stored extension: a blurred frame keeps its own.
PIL_FORMATS = {extension: image_format for image_format, extension in EXTENSIONS.items()}
JPEG_QUALITY = 90
# A replaced upload younger than this may still be deleted by its own worker, just after its commit.
REPLACED_UPLOAD_GRACE = timedelta(minutes=1)
# Each sweep at most: rows are left only by failed deletes, so a backlog means the storage is away.
REPLACED_UPLOADS_A_SWEEP = 1000
WITHHELD = (
    "frame {frame} is not shown: its camera keeps frames with heads blurred, and this one is not blurred (it is once "
    "counted; frames counted before blurring was turned on stay unshown)"
)


def is_blurred(image: FieldFile) -> bool:
    """Whether the stored frame `image` is the blurred copy the worker wrote (an empty field is not)."""
    return bool(image) and BLURRED_MARK in PurePosixPath(image.name).stem


def blurred_filename(filename: str) -> str:
    """`filename` (`frame.jpg`, `frame-small.jpg`) as the name of its blurred copy (`frame-blurred.jpg`)."""
    path = PurePosixPath(filename)
    return f"{path.stem}{BLURRED_MARK}{path.suffix}"


def image_shown(frame: Frame, camera: Camera | None = None) -> bool:
    """Whether pages, the API and emails may show `frame`'s stored image: it is kept, and it is blurred or its camera
    does not blur heads. `camera` is the frame's, when the caller has it loaded (else it is read)."""
    if not frame.image:
        return False
    if is_blurred(frame.image):
        return True
    return not (camera or frame.camera).blur_heads


@dataclass(frozen=True)
class BlurredFrame:
    """A counted frame's blurred copy, written to the storage beside the upload and not yet the frame's image."""

    name: str  # the stored file's name
    rgb: np.ndarray  # what it holds, decoded: RGB uint8, upright
    blurred_share: float  # of its pixels, 0 to 1
    ms: float  # blurring and encoding it


def encode_like(rgb: np.ndarray, extension: str) -> bytes:
    """`rgb` as an image file of the format its extension names (JPEG at JPEG_QUALITY), without any metadata."""
    image_format = PIL_FORMATS.get(extension.lower())
    if image_format is None:
        raise ValueError(f"frames are stored as {', '.join(PIL_FORMATS)}, not .{extension}")
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    Image.fromarray(rgb).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write_blurred_copy(frame: Frame, rgb: np.ndarray, density: np.ndarray) -> BlurredFrame:
    """Blur the counted frame `rgb` (its upright pixels) where `density` shows people, at the settings' level and
    margin, and write it in the upload's format beside it, under the blurred name. The frame is not changed: the
    caller makes the copy its image (store_result) or deletes it. Raises StorageUnavailable when the storage cannot
    take it now, counting.privacy.BlurError when `density` is not the frame's map."""
    started = time.perf_counter()
    blurred, share = blur_dense_regions(
        rgb, density, settings.CROWDSCOPE_BLUR_DENSITY_LEVEL, settings.CROWDSCOPE_BLUR_MARGIN_PIXELS
    )
    uploaded = PurePosixPath(frame.image.name)
    data = encode_like(blurred, uploaded.suffix.lstrip("."))
    # A field file of its own: the frame's image keeps naming the upload until the result is stored.
    copy = FieldFile(frame, frame.image.field, frame.image.name)
    write_media_file(copy, blurred_filename(f"frame{uploaded.suffix}"), data)
    return BlurredFrame(copy.name, blurred, share, (time.perf_counter() - started) * 1000)


def delete_replaced_upload(storage: Storage, name: str) -> None:
    """Delete the replaced upload `name` from `storage` (a name already gone is no error), then its row."""
    storage.delete(name)
    ReplacedUpload.objects.filter(name=name).delete()


def sweep_replaced_uploads(now: datetime) -> int:
    """The sweep (the beat, every few minutes): delete the replaced uploads whose own delete failed or never ran,
    recorded before `now` less REPLACED_UPLOAD_GRACE, with their rows; how many. A storage still refusing leaves the
    rest for the next sweep."""
    storage = Frame._meta.get_field("image").storage
    names = ReplacedUpload.objects.filter(replaced_at__lt=now - REPLACED_UPLOAD_GRACE).order_by("replaced_at")
    swept = 0
    for name in names.values_list("name", flat=True)[:REPLACED_UPLOADS_A_SWEEP]:
        delete_replaced_upload(storage, name)
        swept += 1
    return swept
