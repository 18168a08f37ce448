"""A real browser on the real dashboard: Debian's chromium, headless, driven by Playwright, against Django's live
server on the test database, with frames counted by the real model through the real task."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import frame_counted_by_model
from webapp.accounts.roles import Role
from webapp.cameras.models import Camera, Site, Zone

# Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make between browser steps are
# ordinary blocking calls, which Django would otherwise refuse next to a running loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make test` installs Debian's package (scripts/ensure-services.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(autouse=True)
def served_settings(settings, tmp_path):
    """The live server as the embedded set-up runs: DEBUG on (static files from the finders), media in a temporary
    folder, heatmaps small enough to write quickly."""
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.CROWDSCOPE_HEATMAP_MAX_SIDE = 512
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where pages are photographed: CROWDSCOPE_SCREENSHOTS (docs/ for the README), or a temporary folder."""
    folder = Path(os.environ.get("CROWDSCOPE_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def operator_page(browser, live_server) -> Iterator[Page]:
    page = signed_in_page(browser, live_server, "olivia", Role.OPERATOR)
    yield page
    page.close()


@pytest.fixture
def viewer_page(browser, live_server) -> Iterator[Page]:
    page = signed_in_page(browser, live_server, "victor", Role.VIEWER)
    yield page
    page.close()


@pytest.fixture
def station(transactional_db, shanghaitech) -> dict:
    """A site with two placed cameras; the first has zones and three real Part B frames counted 20 minutes apart."""
    site = Site.objects.create(name="Central Station")
    concourse = Camera.objects.create(
        site=site, name="Concourse", place="north entrance", latitude=31.2304, longitude=121.4737, alert_threshold=400
    )
    platform = Camera.objects.create(site=site, name="Platform 4", latitude=31.2310, longitude=121.4760)
    Zone.objects.create(camera=concourse, name="Left", polygon=[[0, 0], [512, 0], [512, 768], [0, 768]])
    Zone.objects.create(camera=concourse, name="Right", polygon=[[512, 0], [1024, 0], [1024, 768], [512, 768]])
    images = sorted((shanghaitech / "part_B/test/images").glob("IMG_*.jpg"))[:4]
    now = timezone.now()
    frames = [
        frame_counted_by_model(
            concourse, path.read_bytes(), captured_at=now - timedelta(minutes=40 - 20 * i, seconds=30)
        )
        for i, path in enumerate(images[:3])
    ]
    frame_counted_by_model(platform, images[3].read_bytes(), captured_at=now - timedelta(minutes=1))
    return {"site": site, "concourse": concourse, "platform": platform, "frames": frames, "images": images}
