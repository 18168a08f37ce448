"""Which frames of a camera to mark: a spread over the time of day and over the count range, so a calibration sees
the camera's scene by day and by night, empty and full."""

from __future__ import annotations

from itertools import zip_longest

import numpy as np
from django.utils import timezone

from webapp.calibration.jobs import worker_counted_frames
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.ingest.privacy import BLURRED_MARK

# The newest frames considered: enough for a few weeks of a frame every half hour, cheap to stratify.
CANDIDATES = 2000
DAY_BANDS = 6  # four-hour bands of local time
COUNT_LEVELS = 3  # terciles of the candidates' counts


def suggested_frames(camera: Camera, limit: int) -> list[Frame]:
    """Up to `limit` counted frames of `camera` that are not marked yet and still have their image.

    The newest candidates are put into strata by local time of day (six four-hour bands) and by count (terciles of
    their counts); frames are then taken round-robin over the strata, newest first within each, so the first
    eighteen cover every band and level that has frames at all. Frames counted on the gateway are left out: the
    server never had their image; so are blurred frames, and every frame of a camera that blurs heads
    (webapp.ingest.privacy): heads cannot be marked on a blurred frame, nor an unblurred one shown.
    """
    if camera.blur_heads:
        return []
    candidates = list(
        worker_counted_frames(camera)
        .exclude(image="")
        .exclude(image__contains=BLURRED_MARK)
        .filter(markings__isnull=True)
        .select_related("result")
        .order_by("-captured_at")[:CANDIDATES]
    )
    if not candidates:
        return []
    counts = np.array([frame.result.count for frame in candidates])
    edges = np.quantile(counts, np.linspace(0, 1, COUNT_LEVELS + 1)[1:-1])
    strata: dict[tuple[int, int], list[Frame]] = {}
    for frame, count in zip(candidates, counts, strict=True):
        band = timezone.localtime(frame.captured_at).hour * DAY_BANDS // 24
        level = int(np.searchsorted(edges, count, side="right"))
        strata.setdefault((band, level), []).append(frame)
    picked = [frame for turn in zip_longest(*(strata[key] for key in sorted(strata))) for frame in turn if frame]
    return picked[:limit]
