"""The daily report email: HTML with inline chart images and a plain-text alternative, built from a written
report and the day's stored counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.mime.image import MIMEImage
from email.utils import make_msgid
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from webapp.cameras.models import Camera
from webapp.reports.charts import counts_chart, day_results, peak_heatmap
from webapp.reports.history import camera_names
from webapp.reports.models import Report


@dataclass
class CameraSection:
    """One camera's part of the email: the figures the report's narrative tells, and the Content-IDs of its images."""

    camera: Camera
    frames: int
    mean: float | None
    peak: float | None
    peak_at: str
    chart_cid: str
    peak_cid: str | None


def _inline_image(content: bytes, cid: str, name: str) -> MIMEImage:
    image = MIMEImage(content, name.rsplit(".", 1)[1].replace("jpg", "jpeg"))
    image.add_header("Content-ID", f"<{cid}>")
    image.add_header("Content-Disposition", "inline", filename=name)
    return image


def report_email(report: Report, cameras: list[Camera], recipient: str, timezone: str) -> EmailMultiAlternatives:
    """The message for `recipient`; its Message-ID is set, so a delivery can record it."""
    day = report.period_start.astimezone(ZoneInfo(timezone)).date()
    sections, images = _camera_sections(report, cameras, timezone)
    context = {
        "report": report,
        "day": day,
        "timezone": timezone,
        "sections": sections,
        "paragraphs": report.narrative(),
        "url": settings.CROWDSCOPE_BASE_URL.rstrip("/") + reverse("reports:detail", args=[report.pk]),
    }
    message = EmailMultiAlternatives(
        subject=f"CrowdScope daily report: {day:%a %d %b %Y} ({len(cameras)} camera{'s' if len(cameras) != 1 else ''})",
        body=render_to_string("reports/email/daily.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        headers={"Message-ID": make_msgid(domain="crowdscope")},
    )
    message.attach_alternative(render_to_string("reports/email/daily.html", context), "text/html")
    # multipart/related: the HTML refers to the images by Content-ID, so they show inline and not as attachments.
    message.mixed_subtype = "related"
    for image in images:
        message.attach(image)
    return message


def _camera_sections(
    report: Report, cameras: list[Camera], timezone: str
) -> tuple[list[CameraSection], list[MIMEImage]]:
    """Each camera's section, in the order given, and every inline image the sections refer to."""
    names = camera_names(cameras)
    told_by_name = {series["camera"]: series for series in report.facts.get("cameras", [])}
    sections, images = [], []
    for index, camera in enumerate(cameras):
        section, camera_images = _camera_section(
            report, camera, index, told_by_name.get(names[camera.pk], {}), timezone
        )
        sections.append(section)
        images += camera_images
    return sections, images


def _camera_section(
    report: Report, camera: Camera, index: int, told: dict[str, Any], timezone: str
) -> tuple[CameraSection, list[MIMEImage]]:
    """The `index`th camera's section and its images: the day's counts chart, then, where its busiest frame's
    picture is to be shown (`peak_heatmap`), that frame's heatmap.

    `told` is the camera's entry in the report's facts ({} if none): the section shows the figures the narrative
    tells (the mean of hourly means), so the email never shows two different averages of one camera; the report's
    period is the email's day.
    """
    results = day_results(camera, report.period_start, report.period_end)
    chart_cid = f"counts-{index}@crowdscope"
    chart = counts_chart(camera, results, report.period_start, report.period_end, timezone)
    images = [_inline_image(chart, chart_cid, f"counts-{index}.png")]
    top = max(results, key=lambda result: result.count, default=None)
    picture = peak_heatmap(top, settings.CROWDSCOPE_EMAIL_FRAMES) if top else None
    peak_cid = None
    if picture is not None:
        peak_cid = f"peak-{index}@crowdscope"
        images.append(_inline_image(picture, peak_cid, f"peak-{index}.jpg"))
    peak_at = datetime.fromisoformat(told["peak_at"]) if told.get("peak_at") else None
    section = CameraSection(
        camera=camera,
        frames=len(results),
        mean=told.get("mean"),
        peak=told.get("peak"),
        peak_at=f"{peak_at.astimezone(ZoneInfo(timezone)):%H:%M}" if peak_at else "",
        chart_cid=chart_cid,
        peak_cid=peak_cid,
    )
    return section, images
