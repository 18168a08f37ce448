"""Raising alerts from a new result. Called inside the transaction that stores the result, so a frame raises its
alerts exactly once, however often its task runs.

A crossing starts an episode: one alert, whose peak follows the value while it stays over the threshold, and which
ends at the first frame back at or under it. Acknowledging an alert does not end its episode, so an operator who has
seen it is not alerted again until the value has come down and crossed once more.
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp.alerts.models import Alert
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


def raise_alerts(frame: Frame, count: float, zone_counts: dict[int, float]) -> list[Alert]:
    """Start, follow or end each subject's episode; returns the alerts raised by this frame."""
    # The camera's row is the lock: two workers storing frames of one camera decide its episodes one at a time
    # (locking the alerts alone would lock nothing when there is none yet).
    list(Camera.objects.select_for_update().filter(pk=frame.camera_id).order_by("pk").values_list("pk", flat=True))
    raised = []
    for reading in readings(frame.camera, count, zone_counts):
        # By name too: a deleted zone's alerts keep their name but lose the zone, and must not pass for the camera's.
        ongoing = (
            Alert.objects.filter(
                camera=frame.camera,
                zone=reading.zone,
                zone_name=reading.zone.name if reading.zone else "",
                kind=reading.kind,
                ended_at__isnull=True,
            )
            .order_by("-raised_at")
            .first()
        )
        if reading.value > reading.threshold:
            if ongoing is None:
                raised.append(
                    Alert.objects.create(
                        camera=frame.camera,
                        zone=reading.zone,
                        zone_name=reading.zone.name if reading.zone else "",
                        kind=reading.kind,
                        threshold=reading.threshold,
                        value=reading.value,
                        peak=reading.value,
                        frame=frame,
                        raised_at=frame.captured_at,
                    )
                )
            elif reading.value > ongoing.peak:
                ongoing.peak = reading.value
                ongoing.save(update_fields=["peak"])
        elif ongoing is not None and frame.captured_at > ongoing.raised_at:
            ongoing.ended_at = frame.captured_at
            ongoing.save(update_fields=["ended_at"])
    return raised
