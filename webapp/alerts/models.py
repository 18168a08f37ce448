"""Alerts: a camera or zone crossed its threshold. An alert stays open until an operator acknowledges it."""

from __future__ import annotations

import copy

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.accounts.scope import scoped
from webapp.audit_records import log_queryset_update
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Frame


class Alert(models.Model):
    class Kind(models.TextChoices):
        COUNT = "count", "people"
        DENSITY = "density", "people per m²"
        UNUSUAL = "unusual", "people an hour (unusual for the hour and weekday)"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"

    # What a person changes of an alert (the audit log records these alone); the workers write the rest.
    ACKNOWLEDGEMENT_FIELDS = ("state", "acknowledged_by", "acknowledged_at")

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="alerts")
    # Null for the whole view; kept (by name) when the zone is deleted later.
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    zone_name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.COUNT)
    threshold = models.FloatField()
    value = models.FloatField(help_text="at the crossing")
    peak = models.FloatField(help_text="the highest value while over the threshold")
    # Null once retention has deleted the frame's row: the alert itself stays in the history.
    frame = models.ForeignKey(
        Frame,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        help_text="the crossing frame",
        db_constraint=False,  # frames are partitioned (webapp.ingest.models.Result.frame)
    )
    raised_at = models.DateTimeField(help_text="when the crossing frame was captured")
    ended_at = models.DateTimeField(null=True, blank=True, help_text="the first frame back at or under the threshold")
    state = models.CharField(max_length=14, choices=State.choices, default=State.OPEN)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        indexes = [models.Index(fields=["state", "camera"]), models.Index(fields=["camera", "raised_at"])]

    def __str__(self) -> str:
        return f"{self.subject}: {self.value:.1f} {self.get_kind_display()} over {self.threshold:g}"

    @property
    def subject(self) -> str:
        return f"{self.camera.name} / {self.zone_name}" if self.zone_name else self.camera.name

    @property
    def is_open(self) -> bool:
        return self.state == self.State.OPEN

    def acknowledge(self, user) -> bool:
        """Mark acknowledged by `user`, in the audit log too; False when someone already did (the first
        acknowledgement stands)."""
        before = copy.copy(self)
        updated = Alert.objects.filter(pk=self.pk, state=self.State.OPEN).update(
            state=self.State.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=timezone.now()
        )
        self.refresh_from_db()
        if updated:
            log_queryset_update(before, self, self.ACKNOWLEDGEMENT_FIELDS, actor=user)
        return bool(updated)


class Crossing(models.Model):
    """A value over its threshold that has not lasted long enough yet to raise an alert (the camera's
    `alert_after_frames` and `alert_after_minutes`); gone when it raises one or the value comes back down."""

    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="crossings")
    zone = models.ForeignKey(Zone, null=True, blank=True, on_delete=models.CASCADE, related_name="crossings")
    zone_name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=10, choices=Alert.Kind.choices)
    since = models.DateTimeField(help_text="when the first frame over the threshold was captured")
    frames = models.PositiveIntegerField(help_text="frames over the threshold since then, in a row")
    peak = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["camera", "zone_name", "kind"], name="one_crossing_per_subject")]


# The states a list of alerts shows (the page's tabs, the API's `state`), and the most a page or an API page holds.
STATES = ("open", "acknowledged", "all")
MAX_LISTED = 500


def filtered_alerts(principal, state: str, camera: int | None):
    """The alerts of the cameras `principal` sees, in `state`, of one camera or all."""
    alerts = scoped(Alert.objects.select_related("camera__site", "acknowledged_by"), principal)
    if state in (Alert.State.OPEN, Alert.State.ACKNOWLEDGED):
        alerts = alerts.filter(state=state)
    if camera:
        alerts = alerts.filter(camera_id=camera)
    return alerts
