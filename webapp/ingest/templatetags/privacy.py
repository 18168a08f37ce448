"""Template filters about showing frames: `{% load privacy %}`."""

from __future__ import annotations

from django import template

from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.ingest.privacy import image_shown

register = template.Library()


@register.filter
def frame_image_shown(frame: Frame | None, camera: Camera) -> bool:
    """`{% if frame|frame_image_shown:camera %}`: whether a page may show the frame's stored image
    (webapp.ingest.privacy.image_shown), with the camera the page has loaded."""
    return frame is not None and image_shown(frame, camera)
