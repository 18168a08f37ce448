"""The daily report email: HTML with inline chart images and a plain-text alternative, built from a written
report and the day's stored counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.mime.image import MIMEImage
from email.utils import make_msgid
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
    zone = ZoneInfo(timezone)
    day = report.period_start.astimezone(zone).date()
    images, sections = [], []
    names = camera_names(cameras)
    facts_by_name = {series["camera"]: series for series in report.facts.get("cameras", [])}
    for index, camera in enumerate(cameras):
        results = day_results(camera, report.period_start, report.period_end)
        chart_cid = f"counts-{index}@crowdscope"
        images.append(
            _inline_image(
                counts_chart(camera, results, report.period_start, report.period_end, timezone),
                chart_cid,
                f"counts-{index}.png",
            )
        )
        top = max(results, key=lambda result: result.count, default=None)
        picture = peak_heatmap(top, settings.CROWDSCOPE_EMAIL_FRAMES) if top else None
        peak_cid = None
        if picture is not None:
            peak_cid = f"peak-{index}@crowdscope"
            images.append(_inline_image(picture, peak_cid, f"peak-{index}.jpg"))
        # The figures the narrative tells (the report's facts: the mean of hourly means), so the email never shows
        # two different averages of one camera; the report's period is the email's day.
        told = facts_by_name.get(names[camera.pk], {})
        peak_at = datetime.fromisoformat(told["peak_at"]) if told.get("peak_at") else None
        sections.append(
            CameraSection(
                camera=camera,
                frames=len(results),
                mean=told.get("mean"),
                peak=told.get("peak"),
                peak_at=f"{peak_at.astimezone(zone):%H:%M}" if peak_at else "",
                chart_cid=chart_cid,
                peak_cid=peak_cid,
            )
        )
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
