"""Fixtures for the Django project: media in a temporary folder, cameras, gateways with tokens, frames and results."""

import hashlib
import io
import posixpath
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from tests import settings as test_settings
from tests.loopback import Inbox, free_port
from webapp.accounts.roles import Role, assign_role
from webapp.cameras.models import Camera, Gateway, Site, Zone
from webapp.ingest.models import Frame, Result, ZoneCount
from webapp.ingest.results import Counted, store_result
from webapp.ingest.rollups import add_stored_results
from webapp.ingest.storage import local_copy

FRAMES_URL = "/api/v1/frames/"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Uploaded frames and density maps go to a temporary folder, never into the repository; under
    CROWDSCOPE_TEST_STORAGE=s3 to a folder of the session's bucket of the test's own, empty as that folder is."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CROWDSCOPE_WEIGHTS_CACHE_DIR = tmp_path / "weights-cache"
    if test_settings.TEST_STORAGE == "s3":
        bucket = settings.STORAGES["default"]
        location = f"tests/{uuid.uuid4().hex}"
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {**bucket, "OPTIONS": {**bucket["OPTIONS"], "location": location}},
        }
    # An empty collectstatic folder: WhiteNoise serves from the finders and does not warn that the folder is missing.
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.CROWDSCOPE_HEATMAP_MAX_SIDE = 256  # heatmaps of counted frames are quicker to write
    return settings.MEDIA_ROOT


@pytest.fixture
def local_disk(settings, media_root) -> Path:
    """The media storage on the local disk (MEDIA_ROOT), whatever the run's: for tests of the disk itself."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    return media_root


def stored_files(folder: str = "") -> list[str]:
    """The name of every file in the media storage (the local disk or the bucket) under `folder`."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # a folder of the local disk that no file has made yet
        return []
    names = [posixpath.join(folder, name) for name in files]
    for inner in folders:
        names += stored_files(posixpath.join(folder, inner))
    return sorted(names)


def stored_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def stored_copy(field_file) -> Path:
    """A local copy of a stored file, for what reads only paths (checkpoints), as the workers make one."""
    return local_copy(field_file, django_settings.CROWDSCOPE_WEIGHTS_CACHE_DIR)


def replace_stored(name: str, data: bytes) -> None:
    """Put `data` in place of the stored file `name` (a file damaged in storage)."""
    default_storage.delete(name)
    assert default_storage.save(name, ContentFile(data)) == name


def image_file(data: bytes, name: str = "frame.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def make_gateway(name: str, *cameras: Camera, active: bool = True) -> Gateway:
    """A saved gateway for `cameras`; its plain token (shown once in real life) is kept on `.token` for the tests."""
    gateway = Gateway(name=name, is_active=active)
    token = gateway.issue_token()
    gateway.save()
    gateway.cameras.set(cameras)
    gateway.token = token
    return gateway


def user_with_role(username: str, role: Role | None, **fields):
    """A saved user in `role`'s group (None: signed in, but with no role)."""
    user = get_user_model().objects.create_user(username, password="not-used", **fields)
    assign_role(user, role)
    return user


@pytest.fixture
def pages(settings):
    """The embedded set-up for page tests (DEBUG on, as `make demo` runs): static files come from the finders, without
    collectstatic. pytest-django turns DEBUG off, and with DEBUG off the manifest storage wants a manifest."""
    settings.DEBUG = True


@pytest.fixture
def sign_in(client, pages):
    """sign_in(role) signs the test client in as a new user in that role and returns the client."""
    made = iter(range(1_000_000))

    def signed_in(role: Role | None):
        client.force_login(user_with_role(f"{role.group_name if role else 'nobody'}-{next(made)}", role))
        return client

    return signed_in


@pytest.fixture
def viewer(sign_in):
    return sign_in(Role.VIEWER)


@pytest.fixture
def operator(sign_in):
    return sign_in(Role.OPERATOR)


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def site(db) -> Site:
    return Site.objects.create(name="Central Station")


@pytest.fixture
def camera(site) -> Camera:
    return Camera.objects.create(site=site, name="Concourse", place="north entrance")


@pytest.fixture
def gateway(camera) -> Gateway:
    return make_gateway("station-gateway", camera)


@pytest.fixture
def api(gateway) -> APIClient:
    return token_client(gateway.token)


@pytest.fixture
def other_camera(site) -> Camera:
    return Camera.objects.create(site=site, name="Platform 4")


@pytest.fixture
def other_gateway(other_camera) -> Gateway:
    """A second gateway, with a camera of its own."""
    return make_gateway("platform-gateway", other_camera)


@pytest.fixture(scope="session")
def jpeg_path(shanghaitech) -> Path:
    return shanghaitech / "part_B/test/images/IMG_1.jpg"  # 1024x768


@pytest.fixture(scope="session")
def jpeg_bytes(jpeg_path) -> bytes:
    return jpeg_path.read_bytes()


@pytest.fixture(scope="session")
def small_jpeg_bytes(jpeg_path) -> bytes:
    """The same real frame at 320x240, for tests that count but do not care about the size (faster)."""
    with Image.open(jpeg_path) as image:
        small = image.convert("RGB").resize((320, 240), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def store_frame(camera: Camera, data: bytes, extension: str = "jpg", **fields) -> Frame:
    """A frame saved through the ORM with its image in storage, as an upload leaves it (queued, nothing counted)."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    now = timezone.now()
    frame = Frame(
        camera=camera,
        captured_at=fields.pop("captured_at", now),
        received_at=now,
        content_hash=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        **fields,
    )
    frame.image.save(f"frame.{extension}", ContentFile(data), save=False)
    frame.save()
    return frame


def counted_frame(camera: Camera, captured_at, count: float, zones: dict[Zone | str, float] | None = None) -> Frame:
    """A done frame with a result, made through the ORM at a known time (no image, no model run), added to the
    quarter hours and the camera's latest count as counting adds it. A zone given by name alone is counted as a deleted
    zone's counts stay (no zone row)."""
    frame = Frame.objects.create(
        camera=camera,
        captured_at=captured_at,
        content_hash="0" * 64,
        width=1024,
        height=768,
        status=Frame.Status.DONE,
    )
    result = Result.objects.create(
        frame=frame, count=count, model_name="csrnet-lite", model_version="test.pt@000000000000", inference_ms=1.0
    )
    for zone, zone_count in (zones or {}).items():
        if isinstance(zone, str):
            ZoneCount.objects.create(result=result, zone=None, zone_name=zone, count=zone_count)
        else:
            ZoneCount.objects.create(result=result, zone=zone, zone_name=zone.name, count=zone_count)
    add_stored_results([result])
    return frame


def counted_frames(camera: Camera, times: list, count: Callable[[datetime], float]) -> None:
    """Done frames with results at `times`, `count(time)` people each, made in a few queries (weeks of history) and
    added to the quarter hours and the camera's latest count."""
    frames = Frame.objects.bulk_create(
        Frame(camera=camera, captured_at=moment, content_hash="0" * 64, width=64, height=64, status=Frame.Status.DONE)
        for moment in times
    )
    results = Result.objects.bulk_create(
        Result(
            frame=frame,
            captured_at=moment,
            count=count(moment),
            model_name="csrnet-lite",
            model_version="t",
            inference_ms=1.0,
        )
        for frame, moment in zip(frames, times, strict=True)
    )
    add_stored_results(results)


def stored_count(camera: Camera, captured_at: datetime, count: float, zones: dict[Zone, float] | None = None) -> Frame:
    """A frame at `captured_at` whose result (`count` people, `zones` their zone counts) goes through store_result,
    as a worker stores it: alerts raised, notifications made."""
    frame = Frame.objects.create(camera=camera, captured_at=captured_at, content_hash="0" * 64, width=64, height=64)
    zones = zones or {}
    store_result(
        Frame.objects.select_related("camera").get(pk=frame.pk),
        Counted(
            count=count,
            density=np.full((8, 8), count / 64, dtype=np.float32),
            zone_counts={zone.pk: value for zone, value in zones.items()},
            zone_names={zone.pk: zone.name for zone in zones},
            model_name="csrnet-lite",
            model_version="test.pt@000000000000",
            inference_ms=1.0,
        ),
    )
    return frame


@pytest.fixture
def smtp_inbox(settings) -> Iterator[Inbox]:
    """An SMTP server on loopback (aiosmtpd) that Django's email settings point at; what it is sent is kept."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield handler
    controller.stop()


def halves(width: int, height: int) -> dict[str, list[list[int]]]:
    """Two zones splitting a frame into its left and right halves."""
    middle = width // 2
    return {
        "left": [[0, 0], [middle, 0], [middle, height], [0, height]],
        "right": [[middle, 0], [width, 0], [width, height], [middle, height]],
    }


def ago(**delta):
    return timezone.now() - timedelta(**delta)
