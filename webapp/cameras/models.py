"""The registry: sites, their cameras, the zones drawn on each camera's view, and the gateways that upload frames."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from counting.specs import ARCHITECTURE_NAMES, DEFAULT_ARCH
from counting.zones import ZoneError, validate_polygon

MODEL_CHOICES = [(name, name) for name in ARCHITECTURE_NAMES]
HIGH_CROWDING = 0.75  # of the alert threshold


def validate_time_zone(name: str) -> None:
    if name not in available_timezones():
        raise ValidationError(f"{name!r} is not an IANA time zone (for example Europe/Paris or Asia/Shanghai)")


def default_time_zone() -> str:
    return settings.TIME_ZONE


class Site(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Times on the site's pages, alerts, series and CSV are the site's wall clock, whatever the browser's or server's.
    time_zone = models.CharField(
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text="IANA name, e.g. Asia/Shanghai",
    )
    # A floor or street plan to place the cameras on, where latitude and longitude mean little (inside a station).
    plan = models.ImageField(upload_to="plans/", blank=True, help_text="site plan image; cameras go at plan x, y")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class Camera(models.Model):
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="cameras")
    name = models.CharField(max_length=100)
    place = models.CharField(max_length=200, blank=True, help_text="where the camera is, in words")
    latitude = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(null=True, blank=True, validators=[MinValueValidator(-180), MaxValueValidator(180)])
    alert_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)], help_text="people in view that raise an alert"
    )
    # How lasting a crossing must be to raise an alert, and how far the value must come down to end it: for the
    # camera's threshold and its zones'. One noisy count over the threshold should not page anyone.
    alert_after_frames = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="frames in a row over a threshold that raise an alert"
    )
    alert_after_minutes = models.PositiveIntegerField(
        default=0, help_text="minutes those frames must span (0: raise as soon as the frames are there)"
    )
    alert_clear_margin_percent = models.FloatField(
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="an alert ends at a value this many percent under its threshold (0: at the threshold)",
    )
    unusual_alert_percent = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="raise an alert when an hour's mean is this many percent over the camera's usual level for that "
        "hour and weekday (empty: never)",
    )
    counting_model = models.CharField(max_length=50, choices=MODEL_CHOICES, default=DEFAULT_ARCH)
    # Privacy (webapp.ingest.privacy): the worker counts the frame as uploaded, then keeps it blurred wherever the
    # density map shows people; until then nobody is shown it.
    blur_heads = models.BooleanField(
        default=False,
        help_text="keep this camera's frames with the people blurred once counted (count and heatmap come from the "
        "unblurred frame); pages, the API and emails show no frame of it until it is blurred",
    )
    stale_after_minutes = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], help_text="the camera is stale after this long without a frame"
    )
    plan_x = models.FloatField(null=True, blank=True, help_text="position on the site plan, pixels from the left")
    plan_y = models.FloatField(null=True, blank=True, help_text="position on the site plan, pixels from the top")
    # The camera's calibrated weights in use (webapp.calibration); empty: our default weights for its model.
    active_weights = models.ForeignKey(
        "calibration.WeightsVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="calibrated weights counting this camera; empty: the default weights",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site__name", "name"]
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="camera_name_unique_per_site")]

    def __str__(self) -> str:
        return f"{self.site} / {self.name}" if self.site else self.name

    @property
    def time_zone(self) -> str:
        """The IANA name of the camera's wall clock: its site's, else the server's (TIME_ZONE)."""
        return self.site.time_zone if self.site_id else settings.TIME_ZONE

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def state(self, now: datetime | None = None) -> str:
        """live (a frame captured within `stale_after_minutes` is counted), behind (frames arrive, but the newest
        counted one was captured longer ago: a back-fill or a backlog), stale (no frame received for
        `stale_after_minutes`), failing (its last frame could not be counted) or new (no frame yet)."""
        last = self.frames.order_by("-received_at").only("received_at", "status").first()
        newest = self.frames.filter(status="done").order_by("-captured_at").values_list("captured_at", flat=True)
        return self.state_given(last.received_at if last else None, last.status if last else None, newest.first(), now)

    def state_given(
        self,
        last_received: datetime | None,
        last_status: str | None,
        newest_counted: datetime | None,
        now: datetime | None = None,
    ) -> str:
        """The state from the camera's last received frame and the capture time of its newest counted one (for many
        cameras at once, fetched together)."""
        if last_received is None:
            return "new"
        if last_status == "failed":
            return "failing"
        now, fresh = now or timezone.now(), timedelta(minutes=self.stale_after_minutes)
        if now - last_received > fresh:
            return "stale"
        if newest_counted is None or now - newest_counted > fresh:
            return "behind"
        return "live"

    def crowding(self, count: float | None) -> str:
        """How full the view is against the camera's alert threshold: over, high (from 75%), normal, or unknown."""
        if count is None or not self.alert_threshold:
            return "unknown"
        if count > self.alert_threshold:
            return "over"
        return "high" if count >= HIGH_CROWDING * self.alert_threshold else "normal"


def validate_zone_polygon(value: object) -> None:
    try:
        validate_polygon(value)  # type: ignore[arg-type]
    except ZoneError as error:
        raise ValidationError(str(error)) from error


class Zone(models.Model):
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=100)
    polygon = models.JSONField(
        validators=[validate_zone_polygon], help_text="[[x, y], ...] in pixels of the camera's frame"
    )
    alert_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0)], help_text="people in the zone that raise an alert"
    )
    area_m2 = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.1)], help_text="the zone's ground area in square metres"
    )
    density_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="people per square metre that raise an alert",
    )

    class Meta:
        ordering = ["camera", "name"]
        constraints = [models.UniqueConstraint(fields=["camera", "name"], name="zone_name_unique_per_camera")]

    def __str__(self) -> str:
        return f"{self.camera} / {self.name}"

    def clean(self) -> None:
        if self.density_threshold is not None and not self.area_m2:
            raise ValidationError({"area_m2": "a people-per-square-metre threshold needs the zone's area"})

    def people_per_m2(self, count: float) -> float | None:
        return count / self.area_m2 if self.area_m2 else None


def hash_token(token: str) -> str:
    # The tokens are 256 random bits, so a fast hash is as safe as a slow one and lets us look a token up by hash.
    return hashlib.sha256(token.encode()).hexdigest()


class HashedSecretPrincipal(models.Model):
    """Who calls the REST API with a secret of its own (`webapp.cameras.auth.HashedSecretAuthentication`): gateways
    and API keys. Only the secret's hash is kept, with its first characters to recognise it by. Each model names its
    own columns for them (SECRET_HASH_FIELD, SECRET_PREFIX_FIELD, LAST_USED_FIELD), as its table already has them."""

    SECRET_PREFIX_LENGTH = 8
    SECRET_HASH_FIELD: str
    SECRET_PREFIX_FIELD: str
    LAST_USED_FIELD: str

    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    # DRF treats whatever authentication returns as request.user; a principal is authenticated.
    is_authenticated = True

    def issue_secret(self) -> str:
        """A new secret replaces the old one; the caller saves the principal and shows the secret once, since only its
        hash is kept."""
        secret = secrets.token_urlsafe(32)
        setattr(self, self.SECRET_HASH_FIELD, hash_token(secret))
        setattr(self, self.SECRET_PREFIX_FIELD, secret[: self.SECRET_PREFIX_LENGTH])
        return secret

    @classmethod
    def holding(cls, secret: str):
        """The active principal whose secret this is, or None."""
        return cls.objects.filter(**{cls.SECRET_HASH_FIELD: hash_token(secret)}, is_active=True).first()


class Gateway(HashedSecretPrincipal):
    """A site's CCTV gateway: it uploads frames of its own cameras with its API token."""

    SECRET_HASH_FIELD, SECRET_PREFIX_FIELD, LAST_USED_FIELD = "token_hash", "token_prefix", "last_seen_at"

    name = models.CharField(max_length=100, unique=True)
    cameras = models.ManyToManyField(Camera, related_name="gateways", blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=HashedSecretPrincipal.SECRET_PREFIX_LENGTH, editable=False, help_text="to recognise a token"
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def owns(self, camera: Camera) -> bool:
        return self.cameras.filter(pk=camera.pk).exists()
