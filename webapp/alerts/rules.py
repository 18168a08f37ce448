"""Raising alerts from a new result. Called inside the transaction that stores the result, so a frame raises its
alerts exactly once, however often its task runs.

A value over its threshold is a crossing; it raises an alert once it has lasted the camera's `alert_after_frames`
frames in a row spanning `alert_after_minutes` (by default at once), the alert pointing at the frame that raised it.
The alert's peak follows the value while it stays over the threshold, and its episode ends at the first frame at or
under the threshold less the camera's `alert_clear_margin_percent`: a value hovering around the threshold neither
pages again and again nor ends and restarts. Acknowledging an alert does not end its episode, so an operator who has
seen it is not alerted again until the value has come down and crossed once more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from webapp.alerts.events import alerts_changed
from webapp.alerts.models import Alert, Crossing
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Frame


@dataclass(frozen=True)
class Reading:
    zone: Zone | None
    kind: str
    threshold: float
    value: float


def readings(camera: Camera, count: float, zone_counts: dict[int, float]) -> list[Reading]:
    """Every thresholded value this result gives: the camera's count, and each zone's count and people per m²."""
    found = []
    if camera.alert_threshold is not None:
        found.append(Reading(None, Alert.Kind.COUNT, camera.alert_threshold, count))
    for zone in camera.zones.all():
        if zone.pk not in zone_counts:
            continue
        zone_count = zone_counts[zone.pk]
        if zone.alert_threshold is not None:
            found.append(Reading(zone, Alert.Kind.COUNT, zone.alert_threshold, zone_count))
        per_m2 = zone.people_per_m2(zone_count)
        if zone.density_threshold is not None and per_m2 is not None:
            found.append(Reading(zone, Alert.Kind.DENSITY, zone.density_threshold, per_m2))
    return found


@dataclass
class AlertChanges:
    """What one frame did to the alerts: those it raised and those whose episode it ended."""

    raised: list[Alert] = field(default_factory=list)
    ended: list[Alert] = field(default_factory=list)


def raise_alerts(frame: Frame, count: float, zone_counts: dict[int, float]) -> AlertChanges:
    """Start, follow or end each subject's episode; returns the alerts this frame raised and ended."""
    # The camera's row is the lock: two workers storing frames of one camera decide its episodes one at a time
    # (locking the alerts alone would lock nothing when there is none yet).
    list(Camera.objects.select_for_update().filter(pk=frame.camera_id).order_by("pk").values_list("pk", flat=True))
    camera, changes = frame.camera, AlertChanges()
    for reading in readings(camera, count, zone_counts):
        # By name too: a deleted zone's alerts keep their name but lose the zone, and must not pass for the camera's.
        subject = {
            "camera": camera,
            "zone": reading.zone,
            "zone_name": reading.zone.name if reading.zone else "",
            "kind": reading.kind,
        }
        ongoing = Alert.objects.filter(**subject, ended_at__isnull=True).order_by("-raised_at").first()
        over = reading.value > reading.threshold
        if ongoing is not None:
            if over and reading.value > ongoing.peak:
                ongoing.peak = reading.value
                ongoing.save(update_fields=["peak"])
            elif reading.value <= clear_level(camera, reading.threshold) and frame.captured_at > ongoing.raised_at:
                ongoing.ended_at = frame.captured_at
                ongoing.save(update_fields=["ended_at"])
                changes.ended.append(ongoing)
        elif not over:
            Crossing.objects.filter(**subject).delete()
        elif (peak := lasting_peak(camera, subject, frame, reading.value)) is not None:
            changes.raised.append(
                Alert.objects.create(
                    **subject,
                    threshold=reading.threshold,
                    value=reading.value,
                    peak=peak,
                    frame=frame,
                    raised_at=frame.captured_at,
                )
            )
    return changes


def raise_alerts_on_count(
    sender, frame: Frame, count: float, zone_counts: dict[int, float], recount: bool, **_
) -> None:
    """webapp.ingest.events.frame_counted's receiver: the frame's alerts, and who is told of a first count's."""
    changes = raise_alerts(frame, count, zone_counts)
    if not recount:
        alerts_changed.send(sender=Alert, changes=changes)


def clear_level(camera: Camera, threshold: float) -> float:
    """The value at or under which an episode over `threshold` ends."""
    return threshold * (1 - camera.alert_clear_margin_percent / 100)


def lasting_peak(camera: Camera, subject: dict, frame: Frame, value: float) -> float | None:
    """Count `frame` (over the threshold) into its subject's crossing: the crossing's peak when it has now lasted long
    enough to raise an alert (and is done with), else None."""
    if camera.alert_after_frames <= 1 and not camera.alert_after_minutes:
        return value
    crossing, created = Crossing.objects.get_or_create(
        **subject, defaults={"since": frame.captured_at, "frames": 1, "peak": value}
    )
    if not created:
        crossing.frames += 1
        crossing.peak = max(crossing.peak, value)
        crossing.since = min(crossing.since, frame.captured_at)
    lasted = frame.captured_at - crossing.since >= timedelta(minutes=camera.alert_after_minutes)
    if crossing.frames >= camera.alert_after_frames and lasted:
        crossing.delete()
        return crossing.peak
    crossing.save()
    return None
