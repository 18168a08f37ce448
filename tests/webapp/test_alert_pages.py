"""The alert list (by state and camera), acknowledging from the page (operators only), and the alerts API."""

import pytest

from tests.factories import ago, frame_with_result
from webapp.alerts.models import Alert

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def make_alert(camera, value: float, minutes_ago: int, **fields) -> Alert:
    frame = frame_with_result(camera, ago(minutes=minutes_ago), value)
    return Alert.objects.create(
        camera=camera, threshold=50, value=value, peak=value, frame=frame, raised_at=frame.captured_at, **fields
    )


@pytest.fixture
def alerts(camera, other_camera):
    return {
        "open": make_alert(camera, 60, 30),
        "other camera": make_alert(other_camera, 70, 20),
        "acknowledged": make_alert(camera, 80, 10, state=Alert.State.ACKNOWLEDGED),
    }


def listed(response) -> set[int]:
    return {alert.pk for alert in response.context["alerts"]}


def test_the_list_filters_by_state_and_camera(viewer, alerts, camera):
    assert listed(viewer.get("/alerts/")) == {alerts["open"].pk, alerts["other camera"].pk}
    assert listed(viewer.get("/alerts/", {"state": "acknowledged"})) == {alerts["acknowledged"].pk}
    assert listed(viewer.get("/alerts/", {"state": "all", "camera": camera.pk})) == {
        alerts["open"].pk,
        alerts["acknowledged"].pk,
    }


def test_an_operator_acknowledges_an_alert_and_returns_to_the_page(operator, alerts, camera):
    alert = alerts["open"]
    response = operator.post(f"/alerts/{alert.pk}/acknowledge/", {"next": f"/cameras/{camera.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/cameras/{camera.pk}/"
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_at is not None
    assert alert.acknowledged_by.username.startswith("operator")
    assert alert.pk not in listed(operator.get("/alerts/"))


def test_acknowledging_never_redirects_off_site(operator, alerts):
    response = operator.post(f"/alerts/{alerts['open'].pk}/acknowledge/", {"next": "https://evil.example/"})
    assert response["Location"] == "/alerts/"


def test_a_viewer_cannot_acknowledge_even_by_url(viewer, alerts):
    page = viewer.get("/alerts/").content.decode()
    assert "Acknowledge" not in page
    assert viewer.post(f"/alerts/{alerts['open'].pk}/acknowledge/").status_code == 403
    alerts["open"].refresh_from_db()
    assert alerts["open"].state == Alert.State.OPEN


def test_acknowledging_needs_a_post(operator, alerts):
    assert operator.get(f"/alerts/{alerts['open'].pk}/acknowledge/").status_code == 405


def test_the_rows_fragment_returns_to_the_page_it_is_shown_on(operator, alerts, camera):
    fragment = operator.get(
        "/alerts/", {"camera": camera.pk, "fragment": "rows", "compact": "1", "next": f"/cameras/{camera.pk}/"}
    ).content.decode()
    assert "<html" not in fragment
    assert f'name="next" value="/cameras/{camera.pk}/"' in fragment
    listing = operator.get("/alerts/", {"state": "open", "fragment": "rows"}).content.decode()
    assert 'name="next" value="/alerts/?state=open"' in listing


def test_the_api_lists_alerts_by_camera_state_and_time(viewer, alerts, camera):
    body = viewer.get("/api/v1/alerts/", {"camera": camera.pk}).json()
    assert [alert["id"] for alert in body["alerts"]] == [alerts["acknowledged"].pk, alerts["open"].pk]
    first = body["alerts"][1]
    assert (first["value"], first["threshold"], first["kind"], first["state"]) == (60, 50, "count", "open")
    recent = viewer.get("/api/v1/alerts/", {"from": ago(minutes=15).isoformat()}).json()
    assert [alert["id"] for alert in recent["alerts"]] == [alerts["acknowledged"].pk]
    assert viewer.get("/api/v1/alerts/", {"state": "nonsense"}).status_code == 400


def test_the_api_needs_a_role(client, sign_in, alerts):
    anonymous = client.get("/api/v1/alerts/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Bearer"  # an API key would do
    assert sign_in(None).get("/api/v1/alerts/").status_code == 403
