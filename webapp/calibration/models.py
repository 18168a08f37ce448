"""Per-camera calibration: frames whose heads an operator marked, the camera's own weights as numbered versions
(calibrated on marked frames, or adapted label-free to its unlabeled frames), and the jobs that make them (and
recount a period with them).

Everything a calibration uses or makes is kept as media under `calibration/<camera>/`: a marked frame holds its own
copy of the image, so the retention policy deleting the raw frame loses no marking, and a weights version holds its
checkpoint (`.pt`, for the workers) and its ONNX export (for the camera's gateway).
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import dateformat, timezone

from webapp.cameras.models import Camera
from webapp.ingest.models import Frame

# Fewer marked frames cannot give both a fine-tune and a held-out error worth trusting; 12 or more are advised.
MIN_MARKED_FRAMES = 6
ADVISED_MARKED_FRAMES = 12
# A job runs in minutes; the task stops itself after TIME_LIMIT (workers.tasks), so a job still "running" with no
# word from its worker for JOB_LOST_AFTER lost its worker, and no longer blocks a new one.
TIME_LIMIT = timedelta(minutes=25)
JOB_LOST_AFTER = timedelta(minutes=30)


def validate_points(points: object, width: int, height: int) -> list[list[float]]:
    """Head points as a list of [x, y] finite pixel coordinates inside 0..width x 0..height; raises ValidationError
    naming the first bad point, else returns them as floats."""
    if not isinstance(points, list):
        raise ValidationError("points must be a list of [x, y] pairs")
    clean = []
    for index, point in enumerate(points):
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise ValidationError(f"point {index} is {point!r}, not [x, y]")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in point):
            raise ValidationError(f"point {index} is {point!r}: coordinates must be numbers")
        x, y = float(point[0]), float(point[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValidationError(f"point {index} is {point!r}: coordinates must be finite")
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValidationError(f"point {index} ({x:g}, {y:g}) lies outside the {width}x{height} frame")
        clean.append([x, y])
    return clean


def marked_image_path(marked: MarkedFrame, filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "jpg"
    return f"calibration/{marked.camera_id}/frames/{uuid.uuid4().hex[:16]}.{extension}"


def weights_path(version: WeightsVersion, filename: str) -> str:
    extension = filename.rsplit(".", 1)[-1].lower()
    return f"calibration/{version.camera_id}/weights/v{version.number}.{extension}"


class MarkedFrame(models.Model):
    """A frame of a camera with its heads marked by hand: the data a calibration trains and measures on."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="marked_frames")
    # The ingest frame it came from (null for an imported image, or once the frame is gone): the image is a copy.
    # No database foreign key: frames are partitioned (webapp.ingest.models.Result.frame).
    frame = models.ForeignKey(
        Frame, null=True, blank=True, on_delete=models.SET_NULL, related_name="markings", db_constraint=False
    )
    image = models.FileField(upload_to=marked_image_path, max_length=255)
    width = models.PositiveIntegerField(help_text="upright, after EXIF orientation")
    height = models.PositiveIntegerField()
    points = models.JSONField(default=list, help_text="[[x, y], ...] head positions in pixels of the image")
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    marked_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["camera", "created_at", "pk"]
        constraints = [
            # One marking per ingest frame: marking it again edits the marking (imported images have no frame).
            models.UniqueConstraint(
                fields=["frame"], condition=models.Q(frame__isnull=False), name="one_marking_per_frame"
            )
        ]

    def __str__(self) -> str:
        return f"{len(self.points)} heads on a frame of {self.camera}"

    def clean(self) -> None:
        if self.frame_id is not None and self.frame.camera_id != self.camera_id:
            raise ValidationError({"frame": f"frame {self.frame_id} is not a frame of camera {self.camera_id}"})
        try:
            self.points = validate_points(self.points, self.width, self.height)
        except ValidationError as error:
            raise ValidationError({"points": error.messages}) from error

    @property
    def count(self) -> int:
        return len(self.points)


class WeightsVersion(models.Model):
    """A camera's own weights, numbered 1, 2, 3... per camera, of one of two kinds:

    - calibrated: fine-tuned on marked frames; the guard's held-out error before and after decided the switch
      (held_out_* and folds are set, the adaptation fields empty);
    - adapted: the default weights' batch-norm statistics re-estimated from the camera's unlabeled frames
      (counting.adaptation); what the library measured is kept (frames, their capture period, mean counts before and
      after, the rule, novelty, strength) and held_out_* are empty. Its base is always empty: adapting starts from
      the default weights.
    """

    class Kind(models.TextChoices):
        CALIBRATED = "calibrated"
        ADAPTED = "adapted"

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="weights_versions")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CALIBRATED)
    arch = models.CharField(max_length=50)
    base = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, help_text="the weights it was tuned from; empty: ours"
    )
    weights = models.FileField(upload_to=weights_path, max_length=255, help_text="PyTorch checkpoint, for workers")
    onnx = models.FileField(upload_to=weights_path, max_length=255, blank=True, help_text="ONNX export, for gateways")
    frames_used = models.ManyToManyField(MarkedFrame, blank=True, related_name="weights_versions")
    held_out_mae_before = models.FloatField(
        null=True, blank=True, help_text="people per frame, the base weights on held-out marked frames (calibrated)"
    )
    held_out_mae_after = models.FloatField(
        null=True, blank=True, help_text="people per frame, these weights on the same frames (calibrated)"
    )
    held_out_frames = models.PositiveIntegerField(
        null=True, blank=True, help_text="marked frames the error was measured on (calibrated)"
    )
    folds = models.PositiveIntegerField(null=True, blank=True, default=1)
    adapted_frames = models.PositiveIntegerField(
        null=True, blank=True, help_text="unlabeled frames the statistics were estimated on (adapted)"
    )
    frames_from = models.DateTimeField(
        null=True, blank=True, help_text="capture time of the oldest of them; empty: frames from a folder (adapted)"
    )
    frames_to = models.DateTimeField(null=True, blank=True, help_text="capture time of the newest of them (adapted)")
    mean_count_before = models.FloatField(
        null=True, blank=True, help_text="people per frame on those frames with the default weights (adapted)"
    )
    mean_count_after = models.FloatField(null=True, blank=True, help_text="the same with these weights (adapted)")
    rule = models.JSONField(null=True, blank=True, help_text="counting.adaptation.AdaptationRule's fields (adapted)")
    novelty = models.FloatField(null=True, blank=True, help_text="distance of the camera from the weights (adapted)")
    strength = models.FloatField(
        null=True, blank=True, help_text="share of the camera's own statistics applied, 0..1 (adapted)"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["camera", "number"]
        constraints = [
            models.UniqueConstraint(fields=["camera", "number"], name="weights_version_number_per_camera"),
            # Each kind carries the figures its pages and guard read: a version without them could not say what
            # the count rests on.
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind="calibrated",
                        held_out_mae_before__isnull=False,
                        held_out_mae_after__isnull=False,
                        held_out_frames__isnull=False,
                    )
                    | models.Q(
                        kind="adapted",
                        adapted_frames__isnull=False,
                        mean_count_before__isnull=False,
                        mean_count_after__isnull=False,
                    )
                ),
                name="weights_version_figures_of_its_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.camera} weights v{self.number}"

    @property
    def label(self) -> str:
        """How results and pages name it, for example `cam3-v2`."""
        return f"cam{self.camera_id}-v{self.number}"

    @property
    def summary(self) -> str:
        """What this version is, in a line for lists: "adapted from 100 frames of 3 Dec-5 Dec; mean count 14.2 →
        27.9", or "calibrated on 12 marked frames; error 9.0 → 3.0"."""
        if self.kind == self.Kind.ADAPTED:
            return (
                f"adapted from {self._adapted_frames_described()}; "
                f"mean count {self.mean_count_before:.1f} → {self.mean_count_after:.1f}"
            )
        return (
            f"calibrated on {self.held_out_frames} marked frame{'s' if self.held_out_frames != 1 else ''}; "
            f"error {self.held_out_mae_before:.1f} → {self.held_out_mae_after:.1f}"
        )

    @property
    def basis(self) -> str:
        """What a count made with these weights rests on, as the camera page says it in one sentence."""
        if self.kind == self.Kind.ADAPTED:
            return (
                f"Adapted from {self._adapted_frames_described()} "
                f"(mean count {self.mean_count_before:.1f} → {self.mean_count_after:.1f}), weights v{self.number}."
            )
        how = "Adapted, then calibrated" if self._adapted_underneath() else "Calibrated"
        return (
            f"{how}: about ±{self.held_out_mae_after:.0f} people on frames like these, measured on "
            f"{self.held_out_frames} marked frame{'s' if self.held_out_frames != 1 else ''} "
            f"(weights v{self.number}, {self._date(self.created_at, 'j M Y')})."
        )

    def _adapted_frames_described(self) -> str:
        frames = f"{self.adapted_frames} frame{'s' if self.adapted_frames != 1 else ''}"
        if self.frames_from is None or self.frames_to is None:
            return f"{frames} from a folder"
        first, last = self._date(self.frames_from, "j M"), self._date(self.frames_to, "j M")
        return f"{frames} of {first}" if first == last else f"{frames} of {first}-{last}"

    def _adapted_underneath(self) -> bool:
        """Whether an adapted version lies under this one in its chain of bases (calibrated on top of it)."""
        seen, base = {self.pk}, self.base
        while base is not None and base.pk not in seen:  # a chain is acyclic; `seen` only guards a hand-edited row
            if base.kind == self.Kind.ADAPTED:
                return True
            seen.add(base.pk)
            base = base.base
        return False

    def _date(self, moment, pattern: str) -> str:
        """`moment` on the camera's wall clock, in Django's date format `pattern`."""
        return dateformat.format(timezone.localtime(moment, self.camera.zone), pattern)


class TrackedJob(models.Model):
    """What a job of the `calibrate` queue reports while it runs: who asked, when, how far, and in a sentence what."""

    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.TextField(blank=True, help_text="what it is doing, or what came of it, in a sentence")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="last word from the worker")

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]


class CalibrationJob(TrackedJob):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SWITCHED = "switched", "switched to the tuned weights"
        KEPT = "kept", "kept the current weights"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="calibration_jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    frames = models.PositiveIntegerField(default=0, help_text="marked frames used")
    held_out_mae_before = models.FloatField(null=True, blank=True)
    held_out_mae_after = models.FloatField(null=True, blank=True)
    result_version = models.ForeignKey(
        WeightsVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )

    class Meta(TrackedJob.Meta):
        constraints = [
            # At most one job of a camera queued or running: a second one would tune from the same weights.
            models.UniqueConstraint(
                fields=["camera"], condition=models.Q(status__in=["queued", "running"]), name="one_active_calibration"
            )
        ]

    def __str__(self) -> str:
        return f"calibration {self.pk} of {self.camera}: {self.status}"

    @classmethod
    def fail_lost(cls, camera: Camera) -> int:
        """Fail the camera's running jobs whose worker was lost (see `_fail_lost`); how many."""
        return _fail_lost(cls, camera)


class AdaptationJob(TrackedJob):
    """Adapt a camera's default weights to its own unlabeled frames (webapp.calibration.adaptation). `kept`: the
    library found the weights already fit the camera (the message says why); the camera keeps its weights."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SWITCHED = "switched", "switched to the adapted weights"
        KEPT = "kept", "kept the current weights"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="adaptation_jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    automatic = models.BooleanField(default=False, help_text="started by the beat for a new camera, not by a person")
    frames = models.PositiveIntegerField(default=0, help_text="unlabeled frames used")
    mean_count_before = models.FloatField(null=True, blank=True)
    mean_count_after = models.FloatField(null=True, blank=True)
    novelty = models.FloatField(null=True, blank=True)
    result_version = models.ForeignKey(
        WeightsVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="adaptation_jobs"
    )
    recount = models.ForeignKey(
        "RecountJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the recount of the camera's stored frames queued after the switch",
    )

    class Meta(TrackedJob.Meta):
        constraints = [
            # At most one job of a camera queued or running: two would race to switch the camera's weights.
            models.UniqueConstraint(
                fields=["camera"], condition=models.Q(status__in=["queued", "running"]), name="one_active_adaptation"
            )
        ]

    def __str__(self) -> str:
        return f"adaptation {self.pk} of {self.camera}: {self.status}"

    @classmethod
    def fail_lost(cls, camera: Camera) -> int:
        """Fail the camera's running jobs whose worker was lost (see `_fail_lost`); how many."""
        return _fail_lost(cls, camera)


def _fail_lost(job_model: type[CalibrationJob | AdaptationJob], camera: Camera) -> int:
    """Mark the camera's running jobs of `job_model` with no word from their worker for JOB_LOST_AFTER as failed, so
    they no longer block a new one; how many."""
    now = timezone.now()
    return job_model.objects.filter(
        camera=camera, status=job_model.Status.RUNNING, updated_at__lt=now - JOB_LOST_AFTER
    ).update(
        status=job_model.Status.FAILED,
        finished_at=now,
        message="lost: no word from its worker for 30 minutes (worker stopped?); the camera keeps its weights",
    )


class RecountJob(TrackedJob):
    """Recount a camera's frames captured in [period_from, period_to) with its weights in use now."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="recount_jobs")
    period_from = models.DateTimeField()
    period_to = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    frames = models.PositiveIntegerField(default=0, help_text="frames recounted so far")

    def __str__(self) -> str:
        return f"recount {self.pk} of {self.camera}: {self.status}"
