"""The zone editor: operators draw, rename, re-threshold and delete zones; bad input is refused and changes
nothing; viewers cannot reach it; new frames are counted per zone from then on."""

import json

import pytest

from tests.factories import ago, frame_with_result, queued_frame
from webapp.cameras.models import Zone
from webapp.ingest.models import ZoneCount
from workers.tasks import count_frame

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

TRIANGLE = [[10, 10], [300, 20], [150, 200]]


def zone_form(**fields) -> dict:
    return {"name": "gate", "polygon": json.dumps(TRIANGLE), **fields}


def test_operators_get_the_editor_over_the_latest_frame(operator, camera, small_jpeg_bytes):
    frame = queued_frame(camera, small_jpeg_bytes, status="done")
    page = operator.get(f"/cameras/{camera.pk}/zones/new/").content.decode()
    assert f'href="/api/v1/frames/{frame.pk}/image"' in page
    assert 'viewBox="0 0 320 240"' in page and 'id="zone-form"' in page


def test_an_operator_draws_a_zone(operator, camera):
    response = operator.post(
        f"/cameras/{camera.pk}/zones/new/", zone_form(alert_threshold="25", area_m2="40", density_threshold="1.5")
    )
    assert response.status_code == 302 and response["Location"] == f"/cameras/{camera.pk}/zones/"
    zone = Zone.objects.get(camera=camera)
    assert (zone.name, zone.polygon, zone.alert_threshold, zone.area_m2, zone.density_threshold) == (
        "gate",
        TRIANGLE,
        25.0,
        40.0,
        1.5,
    )


def test_an_operator_edits_a_zone(operator, camera):
    zone = Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    page = operator.get(f"/cameras/{camera.pk}/zones/{zone.pk}/").content.decode()
    assert json.dumps(TRIANGLE) in page.replace("&quot;", '"')

    operator.post(f"/cameras/{camera.pk}/zones/{zone.pk}/", {"name": "east gate", "polygon": json.dumps(square)})

    zone.refresh_from_db()
    assert (zone.name, zone.polygon, zone.alert_threshold) == ("east gate", square, None)


def test_an_operator_deletes_a_zone_and_its_history_keeps_the_name(operator, camera):
    zone = Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    frame_with_result(camera, ago(minutes=1), 10.0, {zone: 4.0})
    assert operator.post(f"/cameras/{camera.pk}/zones/{zone.pk}/delete/").status_code == 302
    assert not Zone.objects.filter(pk=zone.pk).exists()
    assert ZoneCount.objects.get().zone_name == "gate"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"polygon": "[]"}, "polygon"),
        ({"polygon": json.dumps([[0, 0], [5, 5]])}, "polygon"),
        ({"polygon": "not json"}, "Draw the zone"),
        ({"name": ""}, "name"),
        ({"alert_threshold": "lots"}, "Enter a number"),
        ({"alert_threshold": "nan"}, "Enter a number"),
        ({"area_m2": "inf"}, "Enter a number"),
        ({"alert_threshold": "-3"}, "alert_threshold"),
        ({"density_threshold": "2"}, "needs the zone&#x27;s area"),
    ],
)
def test_bad_zones_are_refused_and_nothing_is_stored(operator, camera, fields, message):
    response = operator.post(f"/cameras/{camera.pk}/zones/new/", zone_form(**fields))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Zone.objects.exists()


def test_a_second_zone_of_the_same_name_is_refused_and_the_first_kept(operator, camera):
    Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    response = operator.post(
        f"/cameras/{camera.pk}/zones/new/", zone_form(polygon=json.dumps([[0, 0], [9, 0], [9, 9]]))
    )
    assert response.status_code == 400
    assert Zone.objects.get().polygon == TRIANGLE


def test_viewers_see_zones_but_cannot_change_them(viewer, camera):
    zone = Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    page = viewer.get(f"/cameras/{camera.pk}/zones/").content.decode()
    assert "gate" in page and 'id="zone-form"' not in page
    for path in ["zones/new/", f"zones/{zone.pk}/"]:
        assert viewer.get(f"/cameras/{camera.pk}/{path}").status_code == 403
        assert viewer.post(f"/cameras/{camera.pk}/{path}", zone_form(name="hijacked")).status_code == 403
    assert viewer.post(f"/cameras/{camera.pk}/zones/{zone.pk}/delete/").status_code == 403
    zone.refresh_from_db()
    assert zone.name == "gate"


def test_new_frames_are_counted_in_a_zone_drawn_in_the_editor(operator, camera, small_jpeg_bytes):
    whole_frame = [[0, 0], [320, 0], [320, 240], [0, 240]]
    operator.post(f"/cameras/{camera.pk}/zones/new/", zone_form(name="all", polygon=json.dumps(whole_frame)))
    frame = queued_frame(camera, small_jpeg_bytes)

    count_frame.apply(args=[frame.pk]).get()

    frame.refresh_from_db()
    zone_count = frame.result.zone_counts.get()
    assert zone_count.zone.name == "all"
    assert zone_count.count == pytest.approx(frame.result.count, rel=1e-4)
