"""The daily report email page: a signed-in user chooses cameras or sites, the local time and the time zone."""

from datetime import time

import pytest

from webapp.cameras.models import Camera
from webapp.reports.models import Delivery, Subscription

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


def test_a_viewer_subscribes_to_cameras_and_sites(viewer, camera, site):
    other = Camera.objects.create(name="Roof")
    response = viewer.post(
        "/reports/subscription/",
        {"active": "on", "cameras": [other.pk], "sites": [site.pk], "send_at": "06:45", "timezone": "Europe/Paris"},
    )
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.send_at, subscription.timezone, subscription.active) == (time(6, 45), "Europe/Paris", True)
    assert {c.pk for c in subscription.report_cameras()} == {camera.pk, other.pk}


def test_an_unknown_time_zone_is_refused_and_nothing_stored(viewer, camera):
    response = viewer.post(
        "/reports/subscription/", {"cameras": [camera.pk], "send_at": "07:00", "timezone": "Mars/Olympus"}
    )
    assert response.status_code == 400
    assert not Subscription.objects.exists()


def test_the_page_lists_recent_emails_and_asks_for_an_address(viewer, camera):
    page = viewer.get("/reports/subscription/").content.decode()
    assert "has no email address" in page
    viewer.post("/reports/subscription/", {"cameras": [camera.pk], "send_at": "07:00", "timezone": "UTC"})
    subscription = Subscription.objects.get()
    Delivery.objects.create(subscription=subscription, day="2026-11-29", status=Delivery.Status.FAILED, error="boom")
    page = viewer.get("/reports/subscription/").content.decode()
    assert "2026" in page and "failed" in page and "boom" in page


def test_a_user_without_a_role_cannot_subscribe(sign_in):
    assert sign_in(None).get("/reports/subscription/").status_code == 403
