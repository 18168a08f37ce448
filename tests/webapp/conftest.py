"""Fixtures for the Django project: media in a temporary folder, signed-in clients, a site with cameras, gateways with
tokens, real frames and an SMTP server. The plain functions that make rows are in tests/factories.py."""

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from PIL import Image
from rest_framework.test import APIClient

from tests import settings as test_settings
from tests.factories import gateway_with_token, token_client, user_with_role
from tests.loopback import Inbox, free_port
from webapp.accounts.roles import Role
from webapp.cameras.models import Camera, Gateway, Site


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


@pytest.fixture
def site(db) -> Site:
    return Site.objects.create(name="Central Station")


@pytest.fixture
def camera(site) -> Camera:
    return Camera.objects.create(site=site, name="Concourse", place="north entrance")


@pytest.fixture
def gateway(camera) -> Gateway:
    return gateway_with_token("station-gateway", camera)


@pytest.fixture
def api(gateway) -> APIClient:
    return token_client(gateway.token)


@pytest.fixture
def other_camera(site) -> Camera:
    return Camera.objects.create(site=site, name="Platform 4")


@pytest.fixture
def other_gateway(other_camera) -> Gateway:
    """A second gateway, with a camera of its own."""
    return gateway_with_token("platform-gateway", other_camera)


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
