"""The Calibrate page: an operator marks heads on frames of a camera, tunes its weights, adapts them to the camera's
unlabeled frames, and picks (or rolls back) the version in use. The page is a shell; its script does everything
through the calibration REST API."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse

from webapp.accounts.roles import Role, role_required
from webapp.accounts.scope import camera_or_404
from webapp.calibration.models import ADVISED_MARKED_FRAMES, MIN_MARKED_FRAMES
from webapp.cameras.models import Camera

SUGGESTED_FRAMES = 20


# An id no row has, reversed in the place of the id the script fills in ({frame} or {id}).
_ID_PLACEHOLDER = 2_147_483_647


def _url_template(name: str, *args, placeholder: str) -> str:
    return reverse(name, args=[*args, _ID_PLACEHOLDER]).replace(str(_ID_PLACEHOLDER), f"{{{placeholder}}}")


def _api_urls(camera: Camera) -> dict[str, str]:
    """The URLs the page's script calls."""
    return {
        "suggested": reverse("api-calibration-frames", args=[camera.pk]) + f"?limit={SUGGESTED_FRAMES}",
        "marked": reverse("api-marked-frames", args=[camera.pk]),
        "markedOne": _url_template("api-marked-frame", camera.pk, placeholder="id"),
        "calibrations": reverse("api-calibrations", args=[camera.pk]),
        "weights": reverse("api-weights", args=[camera.pk]),
        "activate": reverse("api-weights-activate", args=[camera.pk]),
        "rollback": reverse("api-weights-rollback", args=[camera.pk]),
        "adaptations": reverse("api-adaptations", args=[camera.pk]),
        "proposals": _url_template("api-frame-proposals", placeholder="frame"),
        "frame": _url_template("api-frame", placeholder="frame"),
        "recentFrames": reverse("dashboard:camera-frames", args=[camera.pk]),
    }


@role_required(Role.OPERATOR)
def calibration_page(request, pk: int):
    camera = camera_or_404(request.user, pk)
    context = {
        "camera": camera,
        "urls": _api_urls(camera),
        "minimum_frames": MIN_MARKED_FRAMES,
        "advised_frames": ADVISED_MARKED_FRAMES,
    }
    return render(request, "calibration/calibrate.html", context)
