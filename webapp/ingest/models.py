"""Frames uploaded by gateways, and what the workers counted in them."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.db.models import OuterRef, Subquery
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from webapp.cameras.models import Camera, Gateway, Zone
from webapp.health.events import count_event

# The disk (or the user's quota) is full: worth trying again once an operator has made room.
STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def storage_is_full(error: OSError) -> bool:
    """Whether writing the media files failed only for want of room."""
    return error.errno in STORAGE_FULL_ERRNOS


def free_media_bytes() -> int:
    """Free bytes on the file system that holds MEDIA_ROOT (or would, before the first file creates it)."""
    path = Path(settings.MEDIA_ROOT).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def write_media_file(field_file: FieldFile, filename: str, data: bytes) -> None:
    """Write `data` as `field_file`'s file (named by its field's upload_to; the row is not saved). A write that fails,
    a full disk cutting it short, leaves no partial file behind."""
    field, storage = field_file.field, field_file.storage
    name = storage.get_available_name(field.generate_filename(field_file.instance, filename), field.max_length)
    try:
        field_file.name = storage.save(name, ContentFile(data), field.max_length)
    except OSError:
        # Only a partial file: a whole one at this name is another writer's, who took the name first.
        if storage.exists(name) and storage.size(name) < len(data):
            storage.delete(name)
        raise


def frame_upload_path(frame: Frame, filename: str) -> str:
    return f"frames/{frame.camera_id}/{frame.captured_at:%Y/%m/%d}/{frame.content_hash[:16]}-{filename}"


def result_path(result: Result, filename: str) -> str:
    frame = result.frame
    return f"results/{frame.camera_id}/{frame.captured_at:%Y/%m/%d}/{frame.pk}-{filename}"


class Frame(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="frames")
    gateway = models.ForeignKey(Gateway, null=True, blank=True, on_delete=models.SET_NULL, related_name="frames")
    captured_at = models.DateTimeField(help_text="when the camera took the frame, as the gateway says")
    received_at = models.DateTimeField(default=timezone.now)
    # Null when the broker could not take the task: the beat re-sends such frames at its next run.
    enqueued_at = models.DateTimeField(null=True, default=timezone.now, help_text="last sent to the workers")
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes")
    # Empty once the retention policy has deleted the raw frame.
    image = models.FileField(upload_to=frame_upload_path, blank=True, max_length=255)
    width = models.PositiveIntegerField(help_text="upright, after EXIF orientation")
    height = models.PositiveIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    counted_on_gateway = models.BooleanField(
        default=False, help_text="counted by its gateway (edge mode): the frame itself never reached the server"
    )
    processing_since = models.DateTimeField(null=True, blank=True, help_text="when a worker last started counting it")
    interruptions = models.PositiveSmallIntegerField(
        default=0, help_text="times a worker started counting it and died before it finished"
    )

    class Meta:
        ordering = ["-captured_at"]
        indexes = [
            models.Index(fields=["camera", "captured_at"]),
            models.Index(fields=["status", "enqueued_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="frame_idempotency_key_unique_per_gateway",
            )
        ]

    def __str__(self) -> str:
        return f"frame {self.pk} of {self.camera} at {self.captured_at:%Y-%m-%d %H:%M:%S}"

    def start_counting(self) -> int:
        """Mark it processing, now, unless it is done; returns its interruptions so far. A frame found processing
        already was left so by a worker that died: that is one more interruption."""
        with transaction.atomic():
            locked = Frame.objects.select_for_update().get(pk=self.pk)
            if locked.status == Frame.Status.DONE:
                return locked.interruptions
            if locked.status == Frame.Status.PROCESSING:
                locked.interruptions += 1
            locked.status, locked.processing_since = Frame.Status.PROCESSING, timezone.now()
            locked.save(update_fields=["status", "processing_since", "interruptions"])
        self.status, self.interruptions = locked.status, locked.interruptions
        return locked.interruptions

    def mark_waiting(self) -> None:
        """Back in the queue, for a later try of a worker that is alive (not an interruption)."""
        Frame.objects.filter(pk=self.pk, status=Frame.Status.PROCESSING).update(status=Frame.Status.QUEUED)

    def mark_failed(self, error: str) -> None:
        self.status, self.error = Frame.Status.FAILED, error
        failing = Frame.objects.filter(pk=self.pk).exclude(status__in=[Frame.Status.DONE, Frame.Status.FAILED])
        if failing.update(status=self.status, error=error):
            count_event("crowdscope_frames_failed", camera_id=self.camera_id)
        else:  # failed before (a retry's reason replaces the first), or counted meanwhile
            Frame.objects.filter(pk=self.pk, status=Frame.Status.FAILED).update(error=error)


class Result(models.Model):
    """One per frame: the unique frame key is what guarantees a frame is never counted twice."""

    frame = models.OneToOneField(Frame, on_delete=models.CASCADE, related_name="result")
    count = models.FloatField()
    density = models.FileField(upload_to=result_path, max_length=255, help_text="float16 map at 1/8, .npz")
    heatmap = models.FileField(upload_to=result_path, max_length=255, blank=True, help_text="PNG, palette with alpha")
    model_name = models.CharField(max_length=50)
    model_version = models.CharField(max_length=100, help_text="weights file and the start of its SHA-256")
    inference_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.count:.1f} people in {self.frame}"

    def origin(self) -> str:
        """Who counted the frame, and with what, as the dashboard says it."""
        if self.frame.counted_on_gateway:
            return f"counted on the gateway by {self.model_name}; the frame stays on site"
        return f"counted by {self.model_name}"


def newest_result_id() -> Subquery:
    """For annotating cameras: the id of the result of each camera's newest counted frame (None while it has none),
    so that pages and scrapes read every camera's latest count in a fixed number of queries."""
    newest = Result.objects.filter(frame__camera=OuterRef("pk")).order_by("-frame__captured_at")
    return Subquery(newest.values("pk")[:1])


class QuarterHourCount(models.Model):
    """A camera's counts (`zone_name` empty) or one zone's over a quarter hour, kept once retention has deleted the
    frames' rows. Every time zone's hours and days begin on a quarter hour of UTC, so hourly and daily series and
    reports are cut from these as exactly as from the frames."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="quarter_hour_counts")
    zone_name = models.CharField(max_length=100, blank=True)
    start = models.DateTimeField(help_text="on a quarter hour of UTC")
    frames = models.PositiveIntegerField(help_text="counted frames captured in the quarter hour")
    total = models.FloatField(help_text="the sum of their counts (the mean is total / frames)")
    peak = models.FloatField(help_text="the highest count of a single frame")

    class Meta:
        ordering = ["camera", "zone_name", "start"]
        constraints = [
            models.UniqueConstraint(fields=["camera", "zone_name", "start"], name="one_quarter_hour_count_each")
        ]
        indexes = [models.Index(fields=["camera", "start"])]

    def __str__(self) -> str:
        subject = f"{self.camera} / {self.zone_name}" if self.zone_name else str(self.camera)
        return f"{subject} from {self.start:%Y-%m-%d %H:%M}: {self.total / self.frames:.1f} over {self.frames} frames"


class ZoneCount(models.Model):
    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="zone_counts")
    # The zone may be redrawn or deleted later; the name at counting time keeps the history readable.
    zone = models.ForeignKey(Zone, null=True, on_delete=models.SET_NULL, related_name="counts")
    zone_name = models.CharField(max_length=100)
    count = models.FloatField()

    class Meta:
        ordering = ["zone_name"]
        constraints = [models.UniqueConstraint(fields=["result", "zone"], name="zone_count_unique_per_result")]
