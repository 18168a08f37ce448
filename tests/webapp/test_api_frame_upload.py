"""POST /api/v1/frames/: a gateway uploads a frame of one of its cameras; anything else is refused, storing nothing."""

import hashlib
import io
import json
import math
import struct
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from tests.factories import FRAMES_URL, gateway_with_token, image_upload, token_client
from tests.hostile_files import text_bomb_png
from tests.stored_media import stored_bytes, stored_files
from webapp.ingest.models import Frame

pytestmark = pytest.mark.django_db


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(side: int = 20_000) -> bytes:
    """A valid, all-black 1-bit PNG of side x side pixels that compresses to a few tens of kilobytes."""
    row = b"\x00" * (1 + -(-side // 8))  # filter byte, then the row's bits
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def post_frame(client, camera_id, data: bytes | None, **extra):
    body = {"camera": camera_id}
    if data is not None:
        body["image"] = image_upload(data)
    return client.post(FRAMES_URL, body, format="multipart", **extra)


def test_a_real_frame_is_stored_and_queued(api, camera, jpeg_bytes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_frame(api, camera.pk, jpeg_bytes)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued"
    assert body["camera"] == camera.pk
    assert body["status_url"] == f"http://testserver/api/v1/frames/{body['id']}/"
    frame = Frame.objects.get(pk=body["id"])
    assert frame.status == Frame.Status.QUEUED
    assert frame.content_hash == hashlib.sha256(jpeg_bytes).hexdigest()
    assert (frame.width, frame.height) == (1024, 768)
    assert frame.gateway.name == "station-gateway"
    assert frame.image.name.endswith(".jpg")
    assert stored_files() == [frame.image.name]
    assert stored_bytes(frame.image.name) == jpeg_bytes
    assert len(callbacks) == 1, "one count task is sent once the frame is committed"


def test_captured_at_with_a_zone_is_stored(api, camera, small_jpeg_bytes):
    response = api.post(
        FRAMES_URL,
        {"camera": camera.pk, "image": image_upload(small_jpeg_bytes), "captured_at": "2025-03-10T08:15:30+05:30"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    frame = Frame.objects.get(pk=response.json()["id"])
    assert frame.captured_at == datetime(2025, 3, 10, 2, 45, 30, tzinfo=UTC)
    assert frame.received_at > frame.captured_at


def test_captured_at_without_a_zone_is_utc(api, camera, small_jpeg_bytes, settings):
    """As the API documents it, whatever the server's TIME_ZONE (which sets where days start for the counts)."""
    settings.TIME_ZONE = "Asia/Kolkata"
    response = api.post(
        FRAMES_URL,
        {"camera": camera.pk, "image": image_upload(small_jpeg_bytes), "captured_at": "2025-03-10T08:15:30"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    assert Frame.objects.get(pk=response.json()["id"]).captured_at == datetime(2025, 3, 10, 8, 15, 30, tzinfo=UTC)


def test_captured_at_defaults_to_the_time_received(api, camera, small_jpeg_bytes):
    before = timezone.now()
    response = post_frame(api, camera.pk, small_jpeg_bytes)
    after = timezone.now()
    assert response.status_code == 202, response.content
    frame = Frame.objects.get(pk=response.json()["id"])
    assert frame.captured_at == frame.received_at
    assert before <= frame.captured_at <= after


def test_a_retry_with_the_same_idempotency_key_returns_the_first_frame(
    api, camera, small_jpeg_bytes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as first_callbacks:
        first = post_frame(api, camera.pk, small_jpeg_bytes, HTTP_IDEMPOTENCY_KEY="cam1-2025-03-10T08:15:30")
    with django_capture_on_commit_callbacks() as retry_callbacks:
        retry = post_frame(api, camera.pk, small_jpeg_bytes, HTTP_IDEMPOTENCY_KEY="cam1-2025-03-10T08:15:30")

    assert first.status_code == 202 and retry.status_code == 202
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert Frame.objects.count() == 1
    assert len(stored_files()) == 1
    assert (len(first_callbacks), len(retry_callbacks)) == (1, 0)


def test_another_gateway_may_use_the_same_idempotency_key(api, camera, other_gateway, other_camera, small_jpeg_bytes):
    key = "frame-0001"
    mine = post_frame(api, camera.pk, small_jpeg_bytes, HTTP_IDEMPOTENCY_KEY=key)
    theirs = post_frame(token_client(other_gateway.token), other_camera.pk, small_jpeg_bytes, HTTP_IDEMPOTENCY_KEY=key)

    assert mine.status_code == 202 and theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert Frame.objects.get(pk=theirs.json()["id"]).camera == other_camera
    assert Frame.objects.count() == 2


# Bad requests: each function sends one, given the test's objects in `ctx` (api, camera, other_camera, jpeg, settings).
def no_authorization(ctx):
    return post_frame(APIClient(), ctx.camera.pk, ctx.jpeg)


def wrong_token(ctx):
    return post_frame(token_client("not-a-token"), ctx.camera.pk, ctx.jpeg)


def inactive_gateway(ctx):
    revoked = gateway_with_token("revoked-gateway", ctx.camera, active=False)
    return post_frame(token_client(revoked.token), ctx.camera.pk, ctx.jpeg)


def camera_of_another_gateway(ctx):
    return post_frame(ctx.api, ctx.other_camera.pk, ctx.jpeg)


def nonexistent_camera(ctx):
    return post_frame(ctx.api, ctx.other_camera.pk + 1000, ctx.jpeg)


def camera_not_an_integer(ctx):
    return post_frame(ctx.api, "concourse", ctx.jpeg)


def missing_image(ctx):
    return post_frame(ctx.api, ctx.camera.pk, None)


def text_file(ctx):
    return ctx.api.post(
        FRAMES_URL, {"camera": ctx.camera.pk, "image": image_upload(b"people: 12\n" * 100, "frame.jpg")}
    )


def truncated_jpeg(ctx):
    return post_frame(ctx.api, ctx.camera.pk, ctx.jpeg[: len(ctx.jpeg) // 2])


def zero_bytes(ctx):
    return post_frame(ctx.api, ctx.camera.pk, b"")


def over_the_byte_limit(ctx):
    ctx.settings.CROWDSCOPE_MAX_UPLOAD_BYTES = 50_000  # the body is refused from its Content-Length
    return post_frame(ctx.api, ctx.camera.pk, ctx.jpeg)


def just_over_the_byte_limit(ctx):
    ctx.settings.CROWDSCOPE_MAX_UPLOAD_BYTES = len(ctx.jpeg) - 1  # within the multipart allowance: the file is checked
    return post_frame(ctx.api, ctx.camera.pk, ctx.jpeg)


def over_the_pixel_limit(ctx):
    ctx.settings.CROWDSCOPE_MAX_PIXELS = 1024 * 768 - 1
    return post_frame(ctx.api, ctx.camera.pk, ctx.jpeg)


def decompression_bomb(ctx):
    bomb = image_upload(bomb_png(), "frame.png", "image/png")
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": bomb})


def text_chunk_bomb(ctx):
    bomb = image_upload(text_bomb_png(), "frame.png", "image/png")
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": bomb})


def captured_in_the_future(ctx):
    ahead = (timezone.now() + timedelta(minutes=6)).isoformat()
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": image_upload(ctx.jpeg), "captured_at": ahead})


def captured_too_long_ago(ctx):
    ctx.settings.CROWDSCOPE_MAX_FRAME_AGE_DAYS = 7
    old = (timezone.now() - timedelta(days=8)).isoformat()
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": image_upload(ctx.jpeg), "captured_at": old})


def unknown_field(ctx):
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": image_upload(ctx.jpeg), "people": "12"})


def idempotency_key_too_long(ctx):
    return post_frame(ctx.api, ctx.camera.pk, ctx.jpeg, HTTP_IDEMPOTENCY_KEY="k" * 201)


def json_body(ctx):
    return ctx.api.post(FRAMES_URL, {"camera": ctx.camera.pk, "image": "aGVsbG8="}, format="json")


BAD_REQUESTS = [
    # (status, what the error body says, how the request is sent)
    (401, "credentials were not provided", no_authorization),
    (401, "unknown or revoked", wrong_token),
    (401, "unknown or revoked", inactive_gateway),
    (403, "is not one of this gateway's", camera_of_another_gateway),
    (403, "is not one of this gateway's", nonexistent_camera),
    (400, "valid integer", camera_not_an_integer),
    (400, "No file was submitted", missing_image),
    (400, "not an image", text_file),
    (400, "truncated or corrupt", truncated_jpeg),
    (400, "zero bytes", zero_bytes),
    (413, "over the limit of 50,000 bytes", over_the_byte_limit),
    (413, "the limit is 143,044", just_over_the_byte_limit),
    (413, "786,432 pixels", over_the_pixel_limit),
    (413, "pixels", decompression_bomb),
    (400, "the image cannot be read: Decompressed data too large", text_chunk_bomb),
    (400, "more than 300 s ahead of the server's clock", captured_in_the_future),
    (400, "older than 7 days", captured_too_long_ago),
    (400, "unknown field", unknown_field),
    (400, "Idempotency-Key", idempotency_key_too_long),
    (415, "Unsupported media type", json_body),
]


@pytest.mark.parametrize(("expected", "says", "send"), BAD_REQUESTS, ids=[case[-1].__name__ for case in BAD_REQUESTS])
def test_a_bad_upload_is_refused_and_stores_nothing(
    expected, says, send, api, camera, other_gateway, other_camera, jpeg_bytes, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    ctx = SimpleNamespace(api=api, camera=camera, other_camera=other_camera, jpeg=jpeg_bytes, settings=settings)
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(ctx)

    assert response.status_code == expected, response.content
    assert response["Content-Type"] == "application/json"
    assert says in json.dumps(response.json())
    assert Frame.objects.count() == 0
    assert stored_files() == []
    assert callbacks == []


def test_uploads_wait_while_the_storage_is_under_its_reserve(api, camera, jpeg_bytes, settings, local_disk):
    """The local disk's free space: a bucket says it is full by refusing writes (test_object_storage.py)."""
    settings.CROWDSCOPE_MIN_FREE_MB = 2**40  # more than any disk has free

    refused = post_frame(api, camera.pk, jpeg_bytes)
    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] == "60"
    assert "under its reserve of 1099511627776 MB: nothing was stored" in refused.json()["detail"]
    assert Frame.objects.count() == 0 and stored_files() == []

    settings.CROWDSCOPE_MIN_FREE_MB = 0
    assert post_frame(api, camera.pk, jpeg_bytes).status_code == 202


def test_an_unknown_field_is_named_in_the_error(api, camera, jpeg_bytes):
    response = unknown_field(SimpleNamespace(api=api, camera=camera, jpeg=jpeg_bytes))
    assert response.status_code == 400
    assert response.json() == {"people": ["unknown field"]}


def upright_frame_with_exif_rotation(rgb: Image.Image) -> bytes:
    """A JPEG whose pixels are stored landscape, with EXIF Orientation 6 (turn a quarter clockwise to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(rgb, "JPEG", exif=exif, quality=90)


def sixteen_bit_png(rgb: Image.Image) -> bytes:
    grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


FORMATS = {
    # name: (encoder, extension, mode PIL opens it in, upright (width, height))
    "exif_orientation_6": (upright_frame_with_exif_rotation, "jpg", "RGB", (240, 320)),
    "greyscale": (lambda rgb: encode(rgb.convert("L"), "JPEG"), "jpg", "L", (320, 240)),
    "cmyk_jpeg": (lambda rgb: encode(rgb.convert("CMYK"), "JPEG"), "jpg", "CMYK", (320, 240)),
    "sixteen_bit_png": (sixteen_bit_png, "png", "I;16", (320, 240)),
}


@pytest.mark.parametrize("name", FORMATS)
def test_unusual_images_are_accepted_and_counted(
    name, api, camera, small_jpeg_bytes, settings, django_capture_on_commit_callbacks
):
    """EXIF rotation, greyscale, CMYK and 16-bit frames are stored upright and counted by the real model."""
    encoder, extension, mode, (width, height) = FORMATS[name]
    with Image.open(io.BytesIO(small_jpeg_bytes)) as small:
        data = encoder(small.convert("RGB"))
    with Image.open(io.BytesIO(data)) as written:
        assert written.mode == mode  # the test sends what it means to send

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the on-commit enqueue counts the frame in this process
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(data, f"frame.{extension}")})

    assert response.status_code == 202, response.content
    assert len(callbacks) == 2  # the count sent; then, as the task ran here, its figures recorded (metrics)
    frame = Frame.objects.get(pk=response.json()["id"])
    assert (frame.width, frame.height) == (width, height)
    assert frame.image.name.endswith(f".{extension}")
    assert frame.status == Frame.Status.DONE, frame.error
    assert math.isfinite(frame.result.count) and frame.result.count >= 0
    with frame.result.density.open("rb") as handle, np.load(handle) as stored:
        assert stored["density"].shape == (-(-height // 8), -(-width // 8))


def test_the_accepted_body_is_json_serialisable(api, camera, small_jpeg_bytes):
    response = post_frame(api, camera.pk, small_jpeg_bytes)
    body = json.loads(response.content)
    assert set(body) == {"id", "camera", "status", "captured_at", "received_at", "status_url"}
