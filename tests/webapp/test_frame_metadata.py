"""Stored frames keep no metadata: EXIF (maker, GPS), XMP, ICC profiles, comments, PNG text chunks and bytes appended
after the image are gone, the EXIF orientation is applied to the pixels, and a file holding nothing but image data is
stored as sent."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageCms, PngImagePlugin
from PIL.ExifTags import GPS, IFD, Base

from counting.images import load_rgb
from tests.factories import FRAMES_URL, image_upload
from tests.stored_media import stored_bytes
from webapp.ingest.image_metadata import carries_only_pixels
from webapp.ingest.models import Frame
from webapp.ingest.uploads import UploadRejected, check_image
from workers.tasks import count_frame

pytestmark = pytest.mark.django_db

# Written into each test file's metadata; none of them may reach storage.
MAKER, PLACE_NOTE, AUTHOR, COMMENT = "Acme-Spycam", "Rooftop-7", "Jane-Operator", "Shot-by-unit-42"
PLANTED = [MAKER, PLACE_NOTE, AUTHOR, COMMENT]
XMP = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description dc:creator="{AUTHOR}"/></x:xmpmeta>'.encode()
IPTC_TAG = 0x83BB  # IPTC-NAA, which `Base` does not name
# Tags of EXIF (a TIFF's own tags too) that tell more than how to decode the pixels.
METADATA_TAGS = {
    *(Base.Make, Base.Model, Base.Orientation, Base.ImageDescription, Base.Software, Base.Artist),
    *(Base.XMLPacket, Base.InterColorProfile, IPTC_TAG, IFD.Exif, IFD.GPSInfo),
}
ROTATED_CLOCKWISE = 6  # the pixels are stored a quarter turn anticlockwise: shown upright after a clockwise turn


def camera_exif(orientation: int = ROTATED_CLOCKWISE) -> Image.Exif:
    """EXIF as a phone or camera writes it: maker, orientation, and a GPS position."""
    exif = Image.Exif()
    exif[Base.Make] = MAKER
    exif[Base.Orientation] = orientation
    gps = exif.get_ifd(IFD.GPSInfo)
    gps[GPS.GPSLatitudeRef], gps[GPS.GPSLatitude] = "N", (48.0, 51.0, 29.0)
    gps[GPS.GPSAreaInformation] = PLACE_NOTE
    return exif


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scene(jpeg_path) -> Image.Image:
    """A real frame at 320x240, as the camera's sensor saw it."""
    with Image.open(jpeg_path) as image:
        return image.convert("RGB").resize((320, 240), Image.Resampling.LANCZOS)


def checked(data: bytes):
    return check_image(SimpleUploadedFile("frame", data), max_bytes=20_000_000, max_pixels=40_000_000)


def assert_no_metadata(stored: bytes) -> None:
    """Neither Pillow nor a plain search of the bytes finds any of the planted metadata."""
    for planted in PLANTED:
        assert planted.encode() not in stored, planted
    with Image.open(io.BytesIO(stored)) as image:
        assert not METADATA_TAGS & set(image.getexif()), dict(image.getexif())  # a TIFF keeps its structural tags
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "Author"} & set(image.info)
        assert [marker for marker, _ in getattr(image, "applist", [])] in ([], ["APP0"], ["APP14"])


def test_an_uploaded_jpeg_is_served_and_counted_upright_without_its_exif(api, camera, scene, settings):
    """The finding: a phone's JPEG came back byte for byte, maker and GPS position included."""
    upload = encoded(scene, "JPEG", quality=90, exif=camera_exif())
    with Image.open(io.BytesIO(upload)) as sent:
        assert sent.getexif()[Base.Make] == MAKER and sent.size == (320, 240)

    response = api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(upload)}, format="multipart")
    assert response.status_code == 202, response.content
    frame = Frame.objects.get(pk=response.json()["id"])
    served = api.get(api.get(f"{FRAMES_URL}{frame.pk}/").json()["links"]["image"])
    assert served.status_code == 200
    image = b"".join(served.streaming_content) if served.streaming else served.content

    assert image == stored_bytes(frame.image.name)
    assert_no_metadata(image)
    upright = load_rgb(upload)  # the camera's file, turned by its orientation
    with Image.open(io.BytesIO(image)) as stored:
        assert stored.format == "JPEG" and stored.size == (240, 320)  # turned: width and height swapped
        assert np.abs(np.asarray(stored, dtype=np.int16) - upright).mean() < 2  # the same pixels, re-encoded
    assert (frame.width, frame.height) == (240, 320)

    settings.CROWDSCOPE_HEATMAP_MAX_SIDE = 64
    count_frame.apply(args=[frame.pk]).get()
    frame.refresh_from_db()
    assert frame.status == Frame.Status.DONE, frame.error
    density = api.get(f"{FRAMES_URL}{frame.pk}/density.json").json()
    assert density["shape"] == [320 // 8, 240 // 8]  # counted upright, on the stored pixels


def png_with_text(scene: Image.Image) -> bytes:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", AUTHOR)
    text.add_text("Comment", COMMENT, zip=True)
    text.add_itxt("Description", MAKER)
    return encoded(scene, "PNG", pnginfo=text, exif=camera_exif())


FORMATS = {
    "JPEG with XMP, an ICC profile and a comment": lambda scene: encoded(
        scene,
        "JPEG",
        exif=camera_exif(),
        xmp=XMP,
        comment=COMMENT,
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    ),
    "progressive JPEG": lambda scene: encoded(scene, "JPEG", progressive=True, exif=camera_exif()),
    "PNG with text chunks": png_with_text,
    "WebP": lambda scene: encoded(scene, "WEBP", exif=camera_exif(), xmp=XMP),
    "TIFF": lambda scene: encoded(scene, "TIFF", exif=camera_exif(), tiffinfo={270: AUTHOR, 305: MAKER}),
    "GIF with a comment": lambda scene: encoded(scene.convert("P"), "GIF", comment=COMMENT),
}


@pytest.mark.parametrize("build", FORMATS.values(), ids=FORMATS.keys())
def test_each_format_is_stored_in_its_format_upright_without_metadata(scene, build):
    upload = build(scene)
    assert any(planted.encode() in upload for planted in PLANTED)  # the planted metadata is there to strip

    image = checked(upload)

    assert image.data != upload
    assert_no_metadata(image.data)
    upright = load_rgb(upload)
    assert (image.height, image.width) == upright.shape[:2]
    with Image.open(io.BytesIO(image.data)) as stored:
        assert stored.format == Image.open(io.BytesIO(upload)).format
        assert stored.size == (image.width, image.height)
    assert np.abs(load_rgb(image.data).astype(np.int16) - upright).mean() < 3  # lossless formats: 0


def test_bytes_appended_after_the_image_are_not_stored(scene):
    upload = encoded(scene, "JPEG") + COMMENT.encode()
    image = checked(upload)
    assert COMMENT.encode() not in image.data
    assert image.data.endswith(b"\xff\xd9")


def test_a_jfif_thumbnail_is_not_stored(scene):
    """JFIF's APP0 may carry an uncompressed thumbnail, which could show what the frame was cropped from."""
    plain = encoded(scene, "JPEG")
    assert plain[2:4] == b"\xff\xe0" and plain[4:6] == (16).to_bytes(2, "big")
    thumbnail = bytes([1, 1]) + b"\xde\xad\xbe"  # 1x1 pixel, RGB
    upload = plain[:4] + (16 + 3).to_bytes(2, "big") + plain[6:18] + thumbnail + plain[20:]
    with Image.open(io.BytesIO(upload)) as image:
        image.load()  # still a valid JPEG
    assert not carries_only_pixels(upload, "JPEG")
    assert b"\xde\xad\xbe" not in checked(upload).data


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_a_file_of_pixels_alone_is_stored_as_sent(scene, image_format, jpeg_bytes):
    upload = encoded(scene, image_format)
    assert checked(upload).data == upload
    assert checked(jpeg_bytes).data == jpeg_bytes  # a real camera's frame (ShanghaiTech): APP0 and pixels


def test_a_truncated_jpeg_with_exif_is_still_refused(scene):
    upload = encoded(scene, "JPEG", exif=camera_exif())
    with pytest.raises(UploadRejected, match="cannot be decoded"):
        checked(upload[: len(upload) // 2])
