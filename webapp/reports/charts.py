"""Images for the daily email: each camera's counts over the day (PNG), and the frame of its peak with the heatmap
(JPEG): tens of kilobytes each, so that an email of several cameras stays well under a megabyte."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from PIL import Image, ImageFilter

from webapp.cameras.models import Camera
from webapp.ingest.models import Result
from webapp.ingest.privacy import image_shown

PEAK_IMAGE_WIDTH = 480


def day_results(camera: Camera, start: datetime, end: datetime) -> list[Result]:
    return list(
        Result.objects.filter(frame__camera=camera, frame__captured_at__gte=start, frame__captured_at__lt=end)
        .select_related("frame")
        .order_by("frame__captured_at")
    )


def counts_chart(camera: Camera, results: list[Result], start: datetime, end: datetime, timezone: str) -> bytes:
    """A PNG of the counts over the local day, with the camera's alert threshold when it has one."""
    zone = ZoneInfo(timezone)
    figure, axes = plt.subplots(figsize=(6.4, 2.2), dpi=100)
    try:
        times = [result.frame.captured_at.astimezone(zone) for result in results]
        axes.plot(times, [result.count for result in results], color="#1f6feb", linewidth=1.6)
        if camera.alert_threshold:
            axes.axhline(camera.alert_threshold, color="#d7191c", linestyle="--", linewidth=1, label="alert threshold")
            axes.legend(loc="upper left", fontsize=8, frameon=False)
        axes.set_xlim(start.astimezone(zone), end.astimezone(zone))
        axes.set_ylim(bottom=0)
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
        axes.set_ylabel("people", fontsize=9)
        axes.set_title(camera.name, fontsize=10, loc="left")
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def peak_heatmap(peak: Result, frames: str) -> bytes | None:
    """The day's busiest frame with its heatmap laid over it, as a JPEG at most PEAK_IMAGE_WIDTH wide (None when the
    heatmap is not kept). `frames` (CROWDSCOPE_EMAIL_FRAMES): "frame" shows the camera's image, "blurred" blurs it
    past recognising anyone, "none" lays the heatmap over a dark ground, as when the frame is not kept."""
    if not peak.heatmap:
        return None
    with peak.heatmap.open("rb") as handle:
        heat = Image.open(handle).convert("RGBA")
    heat.thumbnail((PEAK_IMAGE_WIDTH, PEAK_IMAGE_WIDTH), Image.Resampling.LANCZOS)
    base = Image.new("RGB", heat.size, (34, 34, 34))
    if frames != "none" and image_shown(peak.frame):  # a camera that blurs heads: only its blurred frames
        try:
            with peak.frame.image.open("rb") as handle:
                base = Image.open(handle).convert("RGB").resize(heat.size, Image.Resampling.LANCZOS)
        except FileNotFoundError:
            pass
        else:
            if frames == "blurred":  # a face a few tens of pixels wide here becomes a smudge
                base = base.filter(ImageFilter.GaussianBlur(radius=heat.width / 40))
    picture = Image.alpha_composite(base.convert("RGBA"), heat).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80, optimize=True)
    return buffer.getvalue()
