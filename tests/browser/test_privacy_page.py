"""A camera that keeps its frames with heads blurred, in a real browser: its page draws the stored, blurred frame under
the unchanged heatmap, and says so. Photographed as docs/privacy.png (with CROWDSCOPE_SCREENSHOTS=docs)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.factories import frame_counted_by_model
from tests.stored_media import stored_bytes
from webapp.cameras.models import Camera, Site
from webapp.ingest.privacy import is_blurred

pytestmark = pytest.mark.django_db(transaction=True)

# The docs' picture: a palette PNG of the frame panel stays well under 300 kB.
SCREENSHOT_COLOURS = 192


def test_the_camera_page_shows_the_blurred_frame_under_the_heatmap(
    operator_page, live_server, shanghaitech, screenshots
):
    camera = Camera.objects.create(
        site=Site.objects.create(name="Nanjing Road"), name="Pedestrian street", place="east end", blur_heads=True
    )
    frame = frame_counted_by_model(camera, (shanghaitech / "part_B/test/images/IMG_1.jpg").read_bytes())
    assert is_blurred(frame.image)

    page = operator_page
    page.goto(f"{live_server.url}/cameras/{camera.pk}/")
    assert page.locator("#blur-note").inner_text() == "heads blurred"
    heatmap_image = page.locator("#heatmap .hm image")
    heatmap_image.wait_for(state="attached")
    assert len(heatmap_image.get_attribute("href")) > 1000
    # Beneath the heatmap, plotly draws the frame the page was given: the blurred copy as stored.
    frame_image = page.locator("#heatmap .imagelayer image")
    frame_image.wait_for(state="attached")
    source = frame_image.get_attribute("href")
    assert source.endswith(f"/api/v1/frames/{frame.pk}/image")
    served = page.evaluate(
        "async url => { const r = await fetch(url); return [r.status, (await r.arrayBuffer()).byteLength]; }", source
    )
    assert served == [200, len(stored_bytes(frame.image.name))]

    # A light heatmap, so that the blurred people show through it in the picture.
    page.locator("#opacity").fill("0.35")
    page.wait_for_function("Number(document.getElementById('heatmap').data[0].opacity) === 0.35")
    shot = page.locator("section.panel").first.screenshot()
    picture = Image.open(io.BytesIO(shot)).convert("RGB").quantize(SCREENSHOT_COLOURS)
    picture.save(screenshots / "privacy.png", optimize=True)
    assert (screenshots / "privacy.png").stat().st_size < 300_000
