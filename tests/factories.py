"""Makers of what the Django tests need: users in a role, gateways with their tokens, API clients, uploads, zones,
calibrated weights versions (`calibrated_weights`) and frames. The frame makers differ in how far a frame goes, each
named for it:

- `queued_frame`: its image in storage, nothing counted, as an upload leaves it;
- `frame_with_result`: done, with a result written through the ORM (no image, no alerts), added to the rollups;
- `count_history`: many such frames at once (weeks of history in a few queries);
- `frame_counted_by_worker`: done through `store_result`, as a worker stores a result: alerts raised, notifications
  made;
- `frame_counted_by_model`: a real image counted by the real model through the worker's task, in this process.
"""

import hashlib
import io
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from webapp.accounts.roles import Role, assign_role
from webapp.calibration.models import WeightsVersion
from webapp.cameras.models import Camera, Gateway, Zone
from webapp.ingest.models import Frame, Result, ZoneCount
from webapp.ingest.results import Counted, store_result
from webapp.ingest.rollups import add_stored_results

FRAMES_URL = "/api/v1/frames/"  # where gateways upload frames


def ago(**delta: float) -> datetime:
    """The moment `delta` (timedelta's keywords) before now."""
    return timezone.now() - timedelta(**delta)


def user_with_role(username: str, role: Role | None, **fields):
    """A saved user in `role`'s group (None: signed in, but with no role)."""
    user = get_user_model().objects.create_user(username, password="not-used", **fields)
    assign_role(user, role)
    return user


def gateway_with_token(name: str, *cameras: Camera, active: bool = True) -> Gateway:
    """A saved gateway for `cameras`; its plain token (shown once in real life) is kept on `.token` for the tests."""
    gateway = Gateway(name=name, is_active=active)
    token = gateway.issue_secret()
    gateway.save()
    gateway.cameras.set(cameras)
    gateway.token = token
    return gateway


def token_client(token: str) -> APIClient:
    """An API client that sends `token` with every request, as a gateway does."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def image_upload(data: bytes, name: str = "frame.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
    """`data` as a file of a multipart upload."""
    return SimpleUploadedFile(name, data, content_type=content_type)


def calibrated_weights(camera: Camera, number: int, onnx: bytes | None = None, **fields) -> WeightsVersion:
    """Version `number` of `camera`'s weights as a calibration job records one (held-out MAE 9.0 -> 3.0 on 12
    frames, 3 folds), `fields` set besides. Its files are stand-ins, not models: the weights are not a checkpoint
    (loading them fails), and an ONNX file is stored only when `onnx` gives its bytes."""
    made = WeightsVersion(
        camera=camera,
        number=number,
        arch="csrnet-lite",
        held_out_mae_before=9.0,
        held_out_mae_after=3.0,
        held_out_frames=12,
        folds=3,
        **fields,
    )
    made.weights.save(f"v{number}.pt", ContentFile(b"not a checkpoint"), save=False)
    if onnx is not None:
        made.onnx.save(f"v{number}.onnx", ContentFile(onnx), save=False)
    made.save()
    return made


def half_zones(width: int, height: int) -> dict[str, list[list[int]]]:
    """Two zones' polygons, "left" and "right", splitting a frame of `width` x `height` into halves."""
    middle = width // 2
    return {
        "left": [[0, 0], [middle, 0], [middle, height], [0, height]],
        "right": [[middle, 0], [width, 0], [width, height], [middle, height]],
    }


def queued_frame(camera: Camera, data: bytes, extension: str = "jpg", **fields) -> Frame:
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


def frame_with_result(
    camera: Camera, captured_at: datetime, count: float, zones: dict[Zone | str, float] | None = None
) -> Frame:
    """A done frame with a result, made through the ORM at a known time (no image, no model run, no alerts), added to
    the quarter hours and the camera's latest count as counting adds it. A zone given by name alone is counted as a
    deleted zone's counts stay (no zone row)."""
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


def count_history(camera: Camera, times: list[datetime], count: Callable[[datetime], float]) -> None:
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


def frame_counted_by_worker(
    camera: Camera, captured_at: datetime, count: float, zones: dict[Zone, float] | None = None
) -> Frame:
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


def frame_counted_by_model(camera: Camera, image: bytes, **fields) -> Frame:
    """A stored frame counted by the real worker task (in this process), as a worker counts an upload."""
    # Imported here: the workers' tasks load torch, which the tests that only make rows need not wait for.
    from workers.tasks import count_frame

    frame = queued_frame(camera, image, **fields)
    count_frame.apply(args=[frame.pk]).get()
    frame.refresh_from_db()
    assert frame.status == Frame.Status.DONE, frame.error
    return frame
