"""Files built to break readers, for the tests of every place that reads what a stranger sent."""

import io
import zipfile

import numpy as np
from PIL import Image, PngImagePlugin


def text_bomb_png() -> bytes:
    """A 3 KB PNG whose zTXt chunk inflates to 3 MB, past Pillow's text limit: opening it raises ValueError."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * 3_000_000, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def inflating_npz(shape: tuple[int, int], key: str = "density") -> bytes:
    """A genuine .npz of float16 zeros of `shape`: 20000 x 20000 inflates to 800 MB from under 1 MB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f2", "fortran_order": False, "shape": shape})
    row_block = bytes(2 * shape[1] * 500)
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(f"{key}.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        for _ in range(shape[0] // 500):
            member.write(row_block)
        member.write(bytes(2 * shape[1] * (shape[0] % 500)))
    return buffer.getvalue()
