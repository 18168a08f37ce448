"""Alerts on a camera far above its usual level: each hour's mean against the median of the same local hour and
weekday over the weeks before, as the reports' unusual values are found (`llm_reports.facts`). Run by the beat a few
minutes after each hour; a camera takes part when its `unusual_alert_percent` is set.

The hour is "unusual" when its mean is over usual x (1 + percent / 100) and over usual + UNUSUAL_MIN_PEOPLE (on a
quiet camera, usual 4, twice the usual level is noise, not news). The alert's threshold is that limit, its value the
hour's mean, its frame the hour's busiest; it ends with the first checked hour back under the limit.
"""

from __future__ import annotations

from datetime import datetime

from webapp.alerts.models import Alert
from webapp.alerts.rules import AlertChanges
from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.ingest.usual import HOUR, same_hours_means, usual_level

UNUSUAL_MIN_PEOPLE = 10.0


def hour_and_limit(camera: Camera, start: datetime) -> tuple[float | None, float | None]:
    """The mean of the hour starting at `start` and the mean over which it is unusual (None: no frame, or not enough
    earlier weeks for a usual level)."""
    means = same_hours_means(camera, start)
    usual = usual_level(means, start)
    if usual is None:
        return means.get(start), None
    return means.get(start), max(usual * (1 + camera.unusual_alert_percent / 100), usual + UNUSUAL_MIN_PEOPLE)


def check_last_hour(now: datetime) -> AlertChanges:
    """Raise, follow or end each watched camera's unusual-level alert for the last whole hour before `now`. Called
    inside a transaction, once an hour; an hour checked twice raises once."""
    changes = AlertChanges()
    for camera in Camera.objects.filter(unusual_alert_percent__isnull=False).select_related("site"):
        local_now = now.astimezone(camera.zone)
        start = local_now.replace(minute=0, second=0, microsecond=0) - HOUR
        mean, limit = hour_and_limit(camera, start)
        if mean is None or limit is None:
            continue
        subject = {"camera": camera, "zone": None, "zone_name": "", "kind": Alert.Kind.UNUSUAL}
        ongoing = Alert.objects.filter(**subject, ended_at__isnull=True).first()
        if ongoing is not None:
            if mean > limit and mean > ongoing.peak:
                ongoing.peak = mean
                ongoing.save(update_fields=["peak"])
            elif mean <= limit and start > ongoing.raised_at:
                ongoing.ended_at = start
                ongoing.save(update_fields=["ended_at"])
                changes.ended.append(ongoing)
        elif mean > limit and not Alert.objects.filter(**subject, raised_at=start).exists():
            busiest = (
                Frame.objects.filter(camera=camera, captured_at__gte=start, captured_at__lt=start + HOUR)
                .exclude(result=None)
                .order_by("-result__count")
                .first()
            )
            changes.raised.append(
                Alert.objects.create(
                    **subject, threshold=round(limit, 2), value=mean, peak=mean, frame=busiest, raised_at=start
                )
            )
    return changes
