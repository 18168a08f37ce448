"""Frames uploaded by gateways, and what the workers counted in them."""

from __future__ import annotations

import uuid

from django.db import models, transaction
from django.utils import timezone

from webapp.cameras.models import Camera, Gateway, Zone
from webapp.metric_events import count_event

# Stored names carry a random part: no two writes ever meet at one name (the same image sent twice, a recount's new
# maps beside the old ones), so a bucket takes each file in one PUT, without asking first whether the name is free.


def frame_upload_path(frame: Frame, filename: str) -> str:
    day, token = f"{frame.captured_at:%Y/%m/%d}", uuid.uuid4().hex[:8]
    return f"frames/{frame.camera_id}/{day}/{frame.content_hash[:16]}-{token}-{filename}"


def result_path(result: Result, filename: str) -> str:
    frame = result.frame
    return f"results/{frame.camera_id}/{frame.captured_at:%Y/%m/%d}/{frame.pk}-{uuid.uuid4().hex[:8]}-{filename}"


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
        # On PostgreSQL frames, results and zone counts are partitioned by capture day (migration 0007): every
        # unique key holds the capture time, the partition key, as PostgreSQL requires. A retry carries the frame's
        # own capture time, so the key still catches it.
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "idempotency_key", "captured_at"],
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
    """One per frame: storing it locks the frame first and finds none there (`webapp.ingest.results.store_result`),
    and (frame, capture time) is unique, so a frame is never counted twice."""

    # No database foreign key: a partitioned table's rows cannot be referenced by id alone. Retention drops a day's
    # frames, results and zone counts together.
    frame = models.OneToOneField(Frame, on_delete=models.CASCADE, related_name="result", db_constraint=False)
    captured_at = models.DateTimeField(help_text="the frame's, copied on save: results are partitioned by it")
    count = models.FloatField()
    density = models.FileField(upload_to=result_path, max_length=255, help_text="float16 map at 1/8, .npz")
    heatmap = models.FileField(upload_to=result_path, max_length=255, blank=True, help_text="PNG, palette with alpha")
    model_name = models.CharField(max_length=50)
    model_version = models.CharField(max_length=100, help_text="weights file and the start of its SHA-256")
    inference_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.count:.1f} people in {self.frame}"

    def save(self, *args, **kwargs) -> None:
        if self.captured_at is None:
            self.captured_at = self.frame.captured_at
        super().save(*args, **kwargs)

    def origin(self) -> str:
        """Who counted the frame, and with what, as the dashboard says it."""
        if self.frame.counted_on_gateway:
            return f"counted on the gateway by {self.model_name}; the frame stays on site"
        return f"counted by {self.model_name}"


class LatestCount(models.Model):
    """Each camera's newest counted frame, kept as frames are counted (`webapp.ingest.rollups`), so that pages and
    scrapes of a thousand cameras read their latest counts from one small table, not from the frames' history."""

    camera = models.OneToOneField(Camera, primary_key=True, on_delete=models.CASCADE, related_name="latest_count")
    # Plain ids, no foreign keys: results are partitioned (see Result.frame).
    frame_id = models.BigIntegerField()
    result_id = models.BigIntegerField()
    captured_at = models.DateTimeField()
    count = models.FloatField()

    def __str__(self) -> str:
        return f"{self.count:.1f} people at {self.captured_at:%Y-%m-%d %H:%M:%S} on camera {self.camera_id}"


class QuarterHourCount(models.Model):
    """A camera's counts (`zone_name` empty) or one zone's over a quarter hour of UTC, added to as each frame is
    counted (`webapp.ingest.rollups`) and kept after retention has deleted the frames' rows. Series of 15 minutes and
    longer, site pages, reports and `/metrics` read these, so they cost the same whatever the frames' history holds;
    every time zone's hours and days begin on a quarter hour of UTC, so they are cut from these exactly."""

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
    result = models.ForeignKey(Result, on_delete=models.CASCADE, related_name="zone_counts", db_constraint=False)
    captured_at = models.DateTimeField(help_text="the frame's, copied on save: zone counts are partitioned by it")
    # The zone may be redrawn or deleted later; the name at counting time keeps the history readable.
    zone = models.ForeignKey(Zone, null=True, on_delete=models.SET_NULL, related_name="counts")
    zone_name = models.CharField(max_length=100)
    count = models.FloatField()

    class Meta:
        ordering = ["zone_name"]
        constraints = [
            models.UniqueConstraint(fields=["result", "zone", "captured_at"], name="zone_count_unique_per_result")
        ]

    def save(self, *args, **kwargs) -> None:
        if self.captured_at is None:
            self.captured_at = self.result.captured_at
        super().save(*args, **kwargs)


class ReplacedUpload(models.Model):
    """An unblurred upload that its blurred copy replaced as its frame's image (webapp.ingest.privacy), until the
    upload's file is deleted. Written in the transaction that switches the frame, so that a worker dying after the
    commit, or a storage refusing the delete, leaves a row for the sweep (`sweep_replaced_uploads`) rather than an
    unblurred frame kept for ever with nothing naming it."""

    name = models.CharField(max_length=255, unique=True, help_text="the upload's name in the media storage")
    replaced_at = models.DateTimeField(default=timezone.now)
