"""Narrative reports written by the local LLM from the stored counts, and operators' follow-up questions."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models

from webapp.cameras.models import Camera


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
    text = models.TextField(blank=True, help_text="the verified narrative")
    facts = models.JSONField(default=dict, help_text="computed in code; the narrative was checked against them")
    verification = models.JSONField(default=dict, help_text="per-sentence outcomes: kept, regenerated, replaced")
    sentences_replaced = models.PositiveIntegerField(default=0)
    sentences_regenerated = models.PositiveIntegerField(default=0)
    model_name = models.CharField(max_length=200, blank=True)
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


class Question(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="questions")
    text = models.CharField(max_length=500)
    answer = models.TextField(blank=True)
    sentences_replaced = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)
    asked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    asked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asked_at"]
