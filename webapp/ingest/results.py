"""Storing what a worker counted: density map, heatmap, zone counts and the alerts they raise in one transaction;
then the retention policy."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image

from counting.density_files import density_npz
from counting.overlay import heatmap_png
from counting.zones import zone_counts
from webapp.cameras.models import Camera
from webapp.ingest.events import count_committed, frame_counted
from webapp.ingest.models import Frame, LatestCount, ReplacedUpload, Result, ZoneCount
from webapp.ingest.privacy import BlurredFrame, blurred_filename, delete_replaced_upload, is_blurred
from webapp.ingest.rollups import add_to_quarter_hours, record_latest, recount_quarter_hour, tally_counts
from webapp.ingest.series import QUARTER_HOUR, bucket_start
from webapp.ingest.storage import StorageUnavailable, write_media_file
from webapp.metric_events import count_event, observe_seconds

log = logging.getLogger(__name__)

RETENTION_POLICIES = ("keep", "delete", "downscale")


@dataclass(frozen=True)
class Counted:
    """What one frame's count says, ready to store: made by `of_density`, whoever counted the frame."""

    count: float
    density: np.ndarray  # at 1/8 of the frame, sums to `count`
    zone_counts: dict[int, float]  # zone id -> people inside it
    zone_names: dict[int, str]
    model_name: str
    model_version: str
    inference_ms: float

    @classmethod
    def of_density(
        cls, camera: Camera, density: np.ndarray, count: float, model_name: str, model_version: str, inference_ms: float
    ) -> Counted:
        """A frame of `camera` counted into `density`: the people inside each of the camera's zones as they are now."""
        zones = list(camera.zones.all())
        return cls(
            count=count,
            density=density,
            zone_counts=zone_counts(density, {zone.pk: zone.polygon for zone in zones}),
            zone_names={zone.pk: zone.name for zone in zones},
            model_name=model_name,
            model_version=model_version,
            inference_ms=inference_ms,
        )


def _result_files(frame: Frame, counted: Counted) -> tuple[bytes, bytes]:
    """The density map (.npz) and the heatmap (.png, no larger than CROWDSCOPE_HEATMAP_MAX_SIDE) of a counted frame,
    encoded before any transaction opens."""
    scale = min(1.0, settings.CROWDSCOPE_HEATMAP_MAX_SIDE / max(frame.width, frame.height))
    size = max(1, round(frame.height * scale)), max(1, round(frame.width * scale))
    return density_npz(counted.density), heatmap_png(counted.density, *size)


def _write_files(result: Result, density_file: bytes, heatmap_file: bytes) -> None:
    """Give `result` (not saved) its new files; if either cannot be written, neither stays and it keeps its names."""
    old_density = result.density.name
    write_media_file(result.density, "density.npz", density_file)
    try:
        write_media_file(result.heatmap, "heatmap.png", heatmap_file)
    except OSError:
        result.density.storage.delete(result.density.name)
        result.density.name = old_density
        raise


def store_result(frame: Frame, counted: Counted, blurred: BlurredFrame | None = None) -> Result | None:
    """Save the result and mark the frame done, unless another delivery of the task got there first (then None).

    With `blurred` (webapp.ingest.privacy), the frame's image becomes that stored copy in the same transaction, and
    the upload is deleted once it commits (or later by the sweep, its ReplacedUpload row says); when the result is not
    stored, the copy is deleted instead."""
    density_file, heatmap_file = _result_files(frame, counted)
    with transaction.atomic():
        try:
            result = _save_result(frame, counted, density_file, heatmap_file, blurred)
        except BaseException:
            if blurred is not None:  # rolled back: the frame keeps the upload as its image
                frame.image.storage.delete(blurred.name)
            raise
        if result is None:
            if blurred is not None:
                frame.image.storage.delete(blurred.name)
            return None
        if blurred is not None:
            # After the commit: until then the upload is the frame's image, and stays it on a rollback. Its
            # ReplacedUpload row, written with the switch, outlives a delete that fails or never runs.
            uploaded = frame.image.name
            transaction.on_commit(lambda: delete_replaced_upload(frame.image.storage, uploaded), robust=True)
        transaction.on_commit(lambda: _record_counted(result.frame, counted))
    if blurred is not None:
        frame.image.name = blurred.name
    return result


def _save_result(
    frame: Frame, counted: Counted, density_file: bytes, heatmap_file: bytes, blurred: BlurredFrame | None
) -> Result | None:
    locked = Frame.objects.select_for_update().get(pk=frame.pk)
    if Result.objects.filter(frame=locked).exists():
        return None
    result = Result(
        frame=locked,
        captured_at=locked.captured_at,
        count=counted.count,
        model_name=counted.model_name,
        model_version=counted.model_version,
        inference_ms=counted.inference_ms,
    )
    _write_files(result, density_file, heatmap_file)
    try:
        result.save()
        ZoneCount.objects.bulk_create(_zone_rows(result, counted))
        add_to_quarter_hours(tally_counts(_counts(locked, counted)))
        record_latest(locked.camera_id, result)
        locked.status, locked.error = Frame.Status.DONE, ""
        changed = ["status", "error"]
        if blurred is not None:
            ReplacedUpload.objects.create(name=locked.image.name)
            locked.image.name = blurred.name
            changed.append("image")
        locked.save(update_fields=changed)
        frame_counted.send(Frame, frame=frame, count=counted.count, zone_counts=counted.zone_counts, recount=False)
    except Exception:
        result.density.delete(save=False)
        result.heatmap.delete(save=False)
        raise
    return result


def _record_counted(frame: Frame, counted: Counted) -> None:
    count_event("crowdscope_frames_counted", camera_id=frame.camera_id)
    count_committed.send(Frame, frame=frame, count=counted.count, zone_counts=counted.zone_counts)
    observe_seconds("crowdscope_inference_seconds", counted.inference_ms / 1000, model=counted.model_name)
    if not frame.counted_on_gateway:
        latency = (timezone.now() - frame.received_at).total_seconds()
        observe_seconds("crowdscope_frame_latency_seconds", latency)


def replace_result(frame: Frame, counted: Counted) -> Result:
    """A recount: give the counted frame `counted` in place of its result, in one transaction with its zone counts
    and its alerts (re-evaluated as if the frame arrived again: a crossing the new count shows is raised, peaks follow;
    alerts already raised are kept). On any failure the old result stays whole; its files go after the commit."""
    density_file, heatmap_file = _result_files(frame, counted)
    with transaction.atomic():
        locked = Frame.objects.select_for_update().select_related("camera").get(pk=frame.pk)
        result = Result.objects.get(frame=locked)
        storage, old_files = result.density.storage, [result.density.name, result.heatmap.name]
        result.count, result.model_name = counted.count, counted.model_name
        result.model_version, result.inference_ms = counted.model_version, counted.inference_ms
        _write_files(result, density_file, heatmap_file)
        try:
            result.save()
            result.zone_counts.all().delete()
            ZoneCount.objects.bulk_create(_zone_rows(result, counted))
            recount_quarter_hour(locked.camera_id, bucket_start(locked.captured_at, QUARTER_HOUR))
            LatestCount.objects.filter(camera_id=locked.camera_id, frame_id=locked.pk).update(count=counted.count)
            frame_counted.send(Frame, frame=locked, count=counted.count, zone_counts=counted.zone_counts, recount=True)
        except Exception:
            result.density.delete(save=False)
            result.heatmap.delete(save=False)
            raise
        transaction.on_commit(lambda: [storage.delete(name) for name in old_files if name])
    return result


def _zone_rows(result: Result, counted: Counted) -> list[ZoneCount]:
    return [
        ZoneCount(
            result=result,
            captured_at=result.captured_at,
            zone_id=zone,
            zone_name=counted.zone_names[zone],
            count=count,
        )
        for zone, count in counted.zone_counts.items()
    ]


def _counts(frame: Frame, counted: Counted) -> list[tuple[int, str, datetime, float]]:
    """The frame's count and its zones' as (camera, zone name, captured at, count) rows for the quarter hours."""
    rows = [(frame.camera_id, "", frame.captured_at, counted.count)]
    rows += [
        (frame.camera_id, counted.zone_names[zone], frame.captured_at, n) for zone, n in counted.zone_counts.items()
    ]
    return rows


def apply_retention(frame: Frame, rgb: np.ndarray, policy: str, max_side: int) -> None:
    """After counting: keep the frame as stored, delete it, or keep a JPEG of `rgb` (the decoded, upright frame as
    stored: blurred, where it was) no larger than `max_side`."""
    if policy == "keep" or not frame.image:
        return
    # Save only the image field: this copy of the frame predates counting, and its status must not win.
    if policy == "delete":
        frame.image.delete(save=False)
        frame.save(update_fields=["image"])
        return
    image = Image.fromarray(rgb)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    original = frame.image.name
    # A blurred frame's small copy is made of it (`rgb`, the caller's blurred pixels) and named so: still shown.
    filename = blurred_filename("frame-small.jpg") if is_blurred(frame.image) else "frame-small.jpg"
    try:
        write_media_file(frame.image, filename, buffer.getvalue())
    except StorageUnavailable as error:
        log.warning("frame %s: %s; kept as uploaded", frame.pk, error)  # counted all the same
        return
    frame.save(update_fields=["image"])
    frame.image.storage.delete(original)
