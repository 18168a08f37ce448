"""Uploaded images without what a camera or an editor wrote beside the pixels: EXIF (maker, serial, GPS, time), XMP,
IPTC, ICC profiles, comments, text chunks, embedded thumbnails and anything appended after the image.

A JPEG or PNG whose structure holds nothing but image data is kept as sent: its pixels stay exactly the camera's, and
checking costs under a millisecond where re-encoding a 1280x720 frame costs about 10 ms of CPU (JPEG) or 100 ms (PNG).
The walks below are allow-lists: anything they do not recognise, however harmless, sends the image to `reencoded`, so
a gap in them costs CPU, never privacy. Every other image is decoded, turned upright by its EXIF
orientation, and encoded again in its own format from the pixels alone.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, JpegImagePlugin

# Segments of a JPEG that hold only what decoding needs: start of frame (baseline, extended, progressive), Huffman and
# quantisation tables, restart interval, start of scan. APP0 is checked apart (JFIF without a thumbnail).
JPEG_PIXEL_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC4, 0xDB, 0xDD, 0xDA})
JPEG_APP0, JPEG_EOI, JPEG_SOS = 0xE0, 0xD9, 0xDA
# JFIF's APP0 payload: identifier, version, density units and two densities, then the thumbnail's width and height.
JFIF_WITHOUT_THUMBNAIL_LENGTH = 14
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks of a PNG that describe its pixels (gamma, sRGB intent, pixel density) and hold nothing about who took it.
PNG_PIXEL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"sRGB", b"pHYs"})
# Re-encoding a JPEG reuses its own quantisation tables (its quality as the camera chose it: the same size, and little
# loss on a second pass); this quality serves where there are none to reuse (WebP).
LOSSY_QUALITY = 95


def carries_only_pixels(data: bytes, image_format: str) -> bool:
    """Whether `data`, a JPEG or PNG that Pillow has already identified as `image_format`, holds nothing but image
    data and ends where the image ends. False for every other format, and for any structure not understood."""
    if image_format == "JPEG":
        return _jpeg_carries_only_pixels(data)
    if image_format == "PNG":
        return _png_carries_only_pixels(data)
    return False


def _jpeg_carries_only_pixels(data: bytes) -> bool:
    if not data.startswith(b"\xff\xd8"):
        return False
    position, scanned = 2, False
    while position + 2 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == JPEG_EOI:
            return scanned and position + 2 == len(data)  # nothing appended after the image
        if position + 4 > len(data):
            return False
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        payload = data[position + 4 : position + 2 + length]
        if length < 2 or len(payload) != length - 2:
            return False
        if marker == JPEG_APP0:
            if not (payload.startswith(b"JFIF\x00") and len(payload) == JFIF_WITHOUT_THUMBNAIL_LENGTH):
                return False
        elif marker not in JPEG_PIXEL_MARKERS:  # APP1 (EXIF, XMP), APP2 (ICC), APP13 (IPTC), COM, ...
            return False
        position += 2 + length
        if marker == JPEG_SOS:
            scanned = True
            position = _end_of_scan(data, position)
    return False


def _end_of_scan(data: bytes, position: int) -> int:
    """Where the marker after a scan's entropy-coded data starts: the first 0xFF that is neither a stuffed 0xFF00
    nor a restart marker (RST0 to RST7). The end of `data` when there is none."""
    while (found := data.find(b"\xff", position)) != -1 and found + 1 < len(data):
        following = data[found + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return found
        position = found + 2
    return len(data)


def _png_carries_only_pixels(data: bytes) -> bool:
    if not data.startswith(PNG_SIGNATURE):
        return False
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):  # length, type, (data), CRC
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if kind not in PNG_PIXEL_CHUNKS or end > len(data):  # tEXt, zTXt, iTXt, eXIf, iCCP, tIME, APNG frames, ...
            return False
        if kind == b"IEND":
            return end == len(data)  # nothing appended after the image
        position = end
    return False


def reencoded(data: bytes) -> tuple[bytes, int, int]:
    """The image in `data` encoded again in its own format from its pixels alone, turned upright by its EXIF
    orientation first, with its width and height (upright). Only the first frame of an animation or a multi-page
    file is kept: it is the one counted. Pillow's exceptions propagate (the caller reports the file unreadable).

    JPEG keeps its quantisation tables and chroma subsampling; PNG, GIF, BMP and TIFF are lossless (TIFF as LZW);
    WebP is lossy at `LOSSY_QUALITY`. The upright copy's `info` is emptied before saving, because Pillow's writers
    copy EXIF, XMP, ICC profiles and comments from it; only a palette's transparent index is kept."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image_format = image.format
        options: dict[str, object] = {}
        if image_format == "JPEG":
            options["qtables"] = image.quantization
            subsampling = JpegImagePlugin.get_sampling(image)
            if subsampling != -1:  # -1: not read from the file (not YCbCr): Pillow's default then
                options["subsampling"] = subsampling
        elif image_format == "PNG":
            # zlib's fastest level: about 2.5 times faster than the default (6) for about 7% more bytes on a camera
            # frame, paid only by PNGs that carried metadata.
            options["compress_level"] = 1
        elif image_format == "WEBP":
            options["quality"] = LOSSY_QUALITY
        elif image_format == "TIFF":
            options["compression"] = "tiff_lzw"
        upright = ImageOps.exif_transpose(image)  # a new image, never `image` itself
    upright.info = {key: value for key, value in upright.info.items() if key == "transparency"}
    buffer = io.BytesIO()
    upright.save(buffer, format=image_format, **options)
    return buffer.getvalue(), upright.width, upright.height
