"""Alert notifications: endpoints (a webhook, email addresses, an MQTT broker), the rules that send an alert's
events to them, and the log of every delivery.

An endpoint's secret (a webhook's signing key, an MQTT broker's password) is kept apart from its URL and never shown
back (see admin.py); its URL names no private address (egress.py)."""

from __future__ import annotations

import secrets
from urllib.parse import unquote, urlsplit, urlunsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site
from webapp.notifications import egress


def without_password(url: str) -> tuple[str, str]:
    """`url` with its user name but without its password, and that password percent-decoded ("" when it has none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


class Endpoint(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "webhook (JSON over HTTP, HMAC-signed)"
        EMAIL = "email", "email"
        MQTT = "mqtt", "MQTT broker (alerts, latest counts, Home Assistant discovery)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    url = models.CharField(
        max_length=500,
        blank=True,
        help_text=(
            "webhook: http(s)://...; MQTT: mqtt://[user@]host[:1883] (a password written here moves to the secret)"
        ),
    )
    secret = models.CharField(
        max_length=200,
        blank=True,
        help_text="webhook: the HMAC-SHA256 key of the signature (made when left empty); MQTT: the broker's password",
    )
    recipients = models.TextField(blank=True, help_text="email: addresses, one a line or comma-separated")
    topic_prefix = models.CharField(max_length=100, default="crowdscope", help_text="MQTT: the topics' first level")
    discovery = models.BooleanField(default=True, help_text="MQTT: publish Home Assistant discovery configs")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def addresses(self) -> list[str]:
        return [part.strip() for part in self.recipients.replace(",", "\n").splitlines() if part.strip()]

    def clean(self) -> None:
        """Refuses a URL that cannot work, and one whose host resolves to an address notifications may not reach
        (egress.refusal). A name that does not resolve yet is taken: every connection checks it again."""
        try:
            parts = urlsplit(self.url)
            port = parts.port or {"http": 80, "https": 443, "mqtt": 1883}.get(parts.scheme)
        except ValueError as error:  # an unclosed [IPv6 bracket, a port out of range
            raise ValidationError({"url": f"not a usable URL: {error}"}) from None
        if self.kind == self.Kind.WEBHOOK and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValidationError({"url": "a webhook needs an http:// or https:// URL"})
        if self.kind == self.Kind.MQTT and (parts.scheme != "mqtt" or not parts.hostname):
            raise ValidationError({"url": "an MQTT endpoint needs mqtt://host[:port]"})
        if self.kind == self.Kind.WEBHOOK and "@" in parts.netloc:
            raise ValidationError(
                {"url": "a webhook URL takes no user name or password: receivers check X-CrowdScope-Signature"}
            )
        if self.kind in (self.Kind.WEBHOOK, self.Kind.MQTT):
            try:
                egress.checked_addresses(parts.hostname, port)
            except egress.RefusedDestination as refused:
                raise ValidationError({"url": str(refused)}) from None
            except egress.UnresolvedHost:
                pass
        if self.kind == self.Kind.EMAIL:
            if not self.addresses:
                raise ValidationError({"recipients": "give at least one address"})
            for address in self.addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError({"recipients": f"{address!r} is not an email address"}) from None
        if "/" in self.topic_prefix.strip("/") or "#" in self.topic_prefix or "+" in self.topic_prefix:
            raise ValidationError({"topic_prefix": "one topic level, without wildcards"})

    def save(self, *args, **kwargs) -> None:
        """A password in an MQTT URL moves to the secret (replacing the one stored); a webhook without a secret gets
        one."""
        if self.kind == self.Kind.MQTT:
            self.url, password = without_password(self.url)
            if password:
                self.secret = password
        if self.kind == self.Kind.WEBHOOK and not self.secret:
            self.secret = secrets.token_urlsafe(32)
        super().save(*args, **kwargs)


class NotificationRule(models.Model):
    """Sends the alerts of one camera, of one site's cameras, or (neither given) of every camera to an endpoint."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="rules")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_rules")
    camera = models.ForeignKey(
        Camera, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_rules"
    )
    on_raise = models.BooleanField(default=True, help_text="when an alert is raised")
    on_clear = models.BooleanField(default=True, help_text="when its value comes back under the clear level")
    escalate_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="again when an alert is still open and unacknowledged this long after it rose"
    )
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        scope = self.camera or self.site or "every camera"
        return f"{scope} -> {self.endpoint.name}"

    def clean(self) -> None:
        if self.site_id and self.camera_id:
            raise ValidationError("choose a site or a camera, not both")

    def covers(self, camera: Camera) -> bool:
        if self.camera_id is not None:
            return self.camera_id == camera.pk
        return self.site_id is None or self.site_id == camera.site_id

    def wants(self, event: str) -> bool:
        return {
            Notification.Event.RAISE: self.on_raise,
            Notification.Event.CLEAR: self.on_clear,
            Notification.Event.ESCALATE: self.escalate_after_minutes is not None,
        }[event]


class Notification(models.Model):
    """One event of one alert for one endpoint: made once (unique), sent until delivered or out of attempts."""

    class Event(models.TextChoices):
        RAISE = "raise"
        ESCALATE = "escalate"
        CLEAR = "clear"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10, choices=Event.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "alert", "event"], name="one_notification_per_event")
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.event} of alert {self.alert_id} to {self.endpoint.name}: {self.status}"
