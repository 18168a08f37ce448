"""Asking for a report: a pending row the workers write later (webapp.reports.generation.generate). Kept apart from
the generation code so that the pages asking for reports never load the LLM's libraries."""

from __future__ import annotations

from datetime import date

from django.conf import settings

from webapp.cameras.models import Camera
from webapp.reports.history import day_period
from webapp.reports.models import Report


def create_report(day: date, cameras: list[Camera] | None = None, timezone: str | None = None, user=None) -> Report:
    """A pending report on the local `day` in `timezone` (default: the TIME_ZONE setting), of `cameras` (default:
    every camera), asked for by `user` (None: the system)."""
    timezone = timezone or settings.TIME_ZONE
    start, end = day_period(day, timezone)
    report = Report.objects.create(period_start=start, period_end=end, timezone=timezone, created_by=user)
    report.cameras.set(cameras if cameras is not None else Camera.objects.all())
    return report
