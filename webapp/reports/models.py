"""Narrative reports of the stored counts (facts computed and told in code, chosen by the local LLM), operators'
follow-up questions, and the daily report emails users subscribe to."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from webapp.accounts.scope import visible_cameras
from webapp.cameras.models import Camera, Site


def history_cache_path(report: Report, filename: str) -> str:
    day = report.period_start.astimezone(ZoneInfo(report.timezone))
    return f"report-caches/{day:%Y/%m/%d}/{report.pk}-{filename}"


class Report(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    timezone = models.CharField(max_length=64)
    cameras = models.ManyToManyField(Camera, related_name="reports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    text = models.TextField(blank=True, help_text="the narrative: each sentence a fact's sentence rendered in code")
    told = models.JSONField(
        default=list, blank=True, help_text="the narrative's sentences in order: {text, fact_id, chosen_by_model} each"
    )
    events = models.JSONField(
        default=list, blank=True, help_text="every fact it could tell, ranked, as the prompt listed"
    )
    facts = models.JSONField(default=dict, help_text="computed in code from the stored counts")
    model_name = models.CharField(max_length=200, blank=True)
    model_reply = models.TextField(blank=True, help_text="the model's raw choice of fact ids")
    # Compression figures of the history prompt.
    prompt_tokens = models.PositiveIntegerField(default=0)
    kept_tokens = models.PositiveIntegerField(default=0)
    prefill_seconds = models.FloatField(default=0)
    decode_tokens_per_second = models.FloatField(default=0)
    kv_cache_mb = models.FloatField(default=0)
    # The compressed history cache, kept so that a follow-up question does not prefill the history again.
    history_cache = models.FileField(upload_to=history_cache_path, blank=True, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-period_start", "-created_at"]

    def __str__(self) -> str:
        return f"report for {self.period_start:%Y-%m-%d} ({self.status})"

    def compression_ratio(self) -> float | None:
        return self.prompt_tokens / self.kept_tokens if self.kept_tokens else None

    def narrative(self) -> list[str]:
        """The narrative's sentences in order. A report written before its told sentences were stored (migration
        0003) has only its text: its non-empty lines then."""
        return [sentence["text"] for sentence in self.told] or [line for line in self.text.splitlines() if line.strip()]


class Question(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="questions")
    text = models.CharField(max_length=500)
    answer = models.TextField(blank=True)
    fact_ids = models.JSONField(
        default=list, blank=True, help_text="the facts whose sentences answer it; none: a refusal"
    )
    seconds = models.FloatField(default=0)
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    asked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asked_at"]


def validate_timezone(name: str) -> None:
    if name not in available_timezones():
        raise ValidationError(f"{name!r} is not a time zone name such as Europe/London or Asia/Shanghai")


class Subscription(models.Model):
    """A user's daily report email: which cameras (directly or by site), at what local time, in which time zone.

    The report covers the subscriber's previous local day; it goes out once their local time passes `send_at`.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscription")
    cameras = models.ManyToManyField(Camera, blank=True, related_name="subscriptions")
    sites = models.ManyToManyField(Site, blank=True, related_name="subscriptions", help_text="every camera of these")
    send_at = models.TimeField(default=time(7, 0), help_text="local time of day")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"daily report for {self.user} at {self.send_at:%H:%M} {self.timezone}"

    def chosen_cameras(self) -> models.QuerySet[Camera]:
        """The chosen cameras and those of the chosen sites."""
        return Camera.objects.filter(models.Q(subscriptions=self) | models.Q(site__subscriptions=self)).distinct()

    def report_cameras(self) -> list[Camera]:
        """The chosen cameras the subscriber sees now: a scope narrowed after subscribing narrows the email too, and a
        subscriber with no role any more sees none."""
        seen = visible_cameras(self.user, self.chosen_cameras())
        return list(seen.select_related("site").order_by("site__name", "name"))

    def day_due(self, now: datetime) -> date | None:
        """The latest local day whose report was due by `now` (a day's report is due at `send_at` the next local
        day), unless it fell due before the subscription existed. A missed minute, or a beat that was down at
        `send_at`, delays that day's email; it never skips it for the next day's."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        day = local.date() - timedelta(days=1 if local.time() >= self.send_at else 2)
        due_at = datetime.combine(day + timedelta(days=1), self.send_at, tzinfo=zone)
        return day if self.created_at is None or due_at >= self.created_at else None


class Delivery(models.Model):
    """One subscriber's email for one day. The unique key is what makes it one email, however often the job runs."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    day = models.DateField(help_text="the subscriber's local day the report covers")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="why the last attempt failed")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="when the running attempt began")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="when it was last handed to the workers")
    report = models.ForeignKey(Report, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    recipient = models.EmailField(blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day", "subscription"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["subscription", "day"], name="one_delivery_per_day")]

    def __str__(self) -> str:
        return f"{self.subscription.user} {self.day} ({self.status})"
