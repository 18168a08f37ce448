"""Alerts raised as results are stored: a crossing opens one alert, its peak follows the value, it ends when the
value comes down; a crossing must last the camera's frames and minutes to raise, and an episode ends only under the
clear margin; an acknowledged episode raises nothing more until the next crossing; zones by count and by people per
square metre; a frame stored twice raises once; an hour far above the camera's usual level raises once."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.utils import timezone

from tests.factories import ago, frame_counted_by_worker, frame_with_result
from webapp.alerts.models import Alert, Crossing
from webapp.alerts.unusual import check_last_hour
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame
from webapp.ingest.results import Counted, store_result

pytestmark = pytest.mark.django_db

START = ago(hours=1)


def stored(camera, minute: int, count: float, zones: dict[Zone, float] | None = None) -> Frame:
    return frame_counted_by_worker(camera, START + timedelta(minutes=minute), count, zones)


@pytest.fixture
def watched(camera):
    camera.alert_threshold = 50
    camera.save()
    return camera


def test_a_crossing_opens_one_alert_whose_peak_follows_the_value(watched):
    stored(watched, 0, 40)
    crossing = stored(watched, 1, 60)
    stored(watched, 2, 75)
    stored(watched, 3, 70)

    alert = Alert.objects.get()
    assert (alert.frame, alert.value, alert.peak, alert.threshold) == (crossing, 60, 75, 50)
    assert alert.state == Alert.State.OPEN and alert.ended_at is None and alert.zone is None


def test_the_episode_ends_when_the_value_comes_down_and_the_alert_stays_open(watched):
    stored(watched, 0, 60)
    stored(watched, 1, 50)  # at the threshold is not over it
    alert = Alert.objects.get()
    assert alert.ended_at == START + timedelta(minutes=1)
    assert alert.state == Alert.State.OPEN


def test_a_new_crossing_after_the_end_opens_a_new_alert(watched):
    for minute, count in enumerate([60, 30, 55]):
        stored(watched, minute, count)
    assert list(Alert.objects.order_by("raised_at").values_list("value", flat=True)) == [60, 55]


def test_an_acknowledged_episode_raises_nothing_more_until_the_next_crossing(watched, django_user_model):
    stored(watched, 0, 60)
    Alert.objects.get().acknowledge(django_user_model.objects.create_user("operator"))
    stored(watched, 1, 90)
    assert Alert.objects.count() == 1 and Alert.objects.get().peak == 90
    stored(watched, 2, 10)
    stored(watched, 3, 70)
    assert Alert.objects.filter(state=Alert.State.OPEN).get().value == 70


def test_no_threshold_no_alert(camera):
    stored(camera, 0, 10_000)
    assert not Alert.objects.exists()


def test_zones_alert_on_their_count_and_on_people_per_square_metre(camera):
    gate = Zone.objects.create(camera=camera, name="gate", polygon=[[0, 0], [9, 0], [9, 9]], alert_threshold=10)
    plaza = Zone.objects.create(
        camera=camera, name="plaza", polygon=[[0, 0], [9, 0], [0, 9]], area_m2=20, density_threshold=2.0
    )
    stored(camera, 0, 60, {gate: 12, plaza: 30})  # plaza: 1.5 people per m²
    stored(camera, 1, 70, {gate: 8, plaza: 50})  # plaza: 2.5 people per m²

    gate_alert = Alert.objects.get(zone=gate)
    assert (gate_alert.kind, gate_alert.value, gate_alert.zone_name) == (Alert.Kind.COUNT, 12, "gate")
    assert gate_alert.ended_at == START + timedelta(minutes=1)
    plaza_alert = Alert.objects.get(zone=plaza)
    assert (plaza_alert.kind, plaza_alert.value, plaza_alert.threshold) == (Alert.Kind.DENSITY, 2.5, 2.0)


def test_a_frame_stored_twice_raises_its_alert_once(watched):
    frame = stored(watched, 0, 80)
    again = Counted(80, np.zeros((8, 8), np.float32), {}, {}, "csrnet-lite", "test.pt@000000000000", 1.0)
    assert store_result(Frame.objects.select_related("camera").get(pk=frame.pk), again) is None
    assert Alert.objects.count() == 1


def test_the_first_acknowledgement_stands(watched, django_user_model):
    stored(watched, 0, 80)
    alert = Alert.objects.get()
    first, second = (django_user_model.objects.create_user(name) for name in ("first", "second"))
    assert alert.acknowledge(first) is True
    assert Alert.objects.get().acknowledge(second) is False
    assert Alert.objects.get().acknowledged_by == first


def test_a_deleted_zones_ongoing_alert_does_not_pass_for_the_cameras(watched):
    gate = Zone.objects.create(camera=watched, name="gate", polygon=[[0, 0], [9, 0], [9, 9]], alert_threshold=10)
    stored(watched, 0, 20, {gate: 15})  # the zone is over, the camera is not
    gate.delete()
    stored(watched, 1, 60)  # now the camera crosses

    camera_alert = Alert.objects.get(zone_name="")
    assert (camera_alert.value, camera_alert.zone) == (60, None)
    assert Alert.objects.get(zone_name="gate").peak == 15


def test_a_crossing_raises_only_after_the_cameras_frames_in_a_row(watched):
    watched.alert_after_frames = 3
    watched.save()
    stored(watched, 0, 60)
    stored(watched, 1, 80)
    stored(watched, 2, 40)  # back under: the run is broken
    assert not Alert.objects.exists() and not Crossing.objects.exists()
    stored(watched, 3, 60)
    stored(watched, 4, 90)
    third = stored(watched, 5, 70)

    alert = Alert.objects.get()
    assert (alert.frame, alert.value, alert.peak, alert.raised_at) == (third, 70, 90, third.captured_at)
    assert not Crossing.objects.exists()


def test_a_crossing_raises_only_once_it_has_lasted_the_cameras_minutes(watched):
    watched.alert_after_minutes = 5
    watched.save()
    for minute in (0, 2, 4):
        stored(watched, minute, 60)
    assert not Alert.objects.exists()
    raising = stored(watched, 5, 61)
    assert Alert.objects.get().frame == raising


def test_an_episode_ends_only_under_the_clear_margin(watched):
    watched.alert_clear_margin_percent = 10  # threshold 50: ends at 45 or less
    watched.save()
    stored(watched, 0, 60)
    stored(watched, 1, 48)  # under the threshold, within the margin: the episode goes on
    stored(watched, 2, 55)  # and no second alert for going over again
    alert = Alert.objects.get()
    assert alert.ended_at is None
    stored(watched, 3, 45)
    alert.refresh_from_db()
    assert alert.ended_at == START + timedelta(minutes=3)
    stored(watched, 4, 51)
    assert Alert.objects.count() == 2


def test_zones_wait_for_their_own_lasting_crossing(camera):
    camera.alert_after_frames = 2
    camera.save()
    zone = Zone.objects.create(camera=camera, name="gate", polygon=[[0, 0], [10, 0], [10, 10]], alert_threshold=5)
    stored(camera, 0, 10, {zone: 9})
    assert Crossing.objects.get().zone == zone
    stored(camera, 1, 10, {zone: 8})
    assert Alert.objects.get().zone_name == "gate"


def test_an_hour_far_above_the_usual_level_raises_an_unusual_alert_once_and_ends(camera):
    """The usual level is the median of the same local hour and weekday in the weeks before; an hour over it by the
    camera's percent (and by 10 people) raises one alert with the hour's busiest frame, which ends with the first
    hour back under the limit."""
    camera.unusual_alert_percent = 50
    camera.save()
    camera.site.time_zone = "Asia/Kolkata"
    camera.site.save()
    hour = datetime(2026, 11, 30, 18, 0, tzinfo=ZoneInfo("Asia/Kolkata"))  # a Monday, 18:00 in Kolkata
    for weeks, count in ((1, 20), (2, 24), (3, 16)):  # usual 20: the limit is max(20 x 1.5, 20 + 10) = 30
        frame_with_result(camera, hour - timedelta(weeks=weeks, minutes=-10), count)
    frame_with_result(camera, hour + timedelta(minutes=5), 40)
    busiest = frame_with_result(camera, hour + timedelta(minutes=35), 60)
    frame_with_result(camera, hour - timedelta(minutes=10), 500)  # the hour before: not this hour's

    changes = check_last_hour(hour + timedelta(hours=1, minutes=5))
    [alert] = changes.raised
    assert (alert.kind, alert.value, alert.threshold, alert.raised_at) == ("unusual", 50, 30, hour)
    assert alert.frame == busiest  # Kolkata's hour, 12:30 to 13:30 UTC: both frames, not half of them
    assert check_last_hour(hour + timedelta(hours=1, minutes=20)).raised == []  # the same hour again: once

    frame_with_result(camera, hour + timedelta(hours=1, minutes=30), 25)
    assert check_last_hour(hour + timedelta(hours=2, minutes=5)).ended == []  # 19:00 has no usual level: kept open
    for weeks in (1, 2):
        frame_with_result(camera, hour + timedelta(hours=2, minutes=10) - timedelta(weeks=weeks), 20)
    frame_with_result(camera, hour + timedelta(hours=2, minutes=10), 22)
    [ended] = check_last_hour(hour + timedelta(hours=3, minutes=5)).ended
    assert ended == alert and ended.ended_at == hour + timedelta(hours=2)


def test_cameras_without_a_percent_are_not_watched_for_unusual_levels(camera):
    frame_with_result(camera, ago(minutes=70), 900)
    assert check_last_hour(timezone.now()).raised == []
