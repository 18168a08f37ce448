"""Sites per person: every view scopes to the sites a person (or an API key) sees.

`test_every_view_scopes` walks the whole URL configuration. Each route is in SCOPED_ROUTES, saying how the test
reaches another site's objects through it, or in NOT_ABOUT_CAMERAS with the reason; a route in neither fails the
test, so a new view must be scoped (and listed) before it lands.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import queued_frame, user_with_role
from webapp.accounts.models import ApiKey
from webapp.accounts.roles import Role
from webapp.accounts.scope import set_site_scope, visible_site_ids
from webapp.alerts.models import Alert
from webapp.calibration.models import AdaptationJob, CalibrationJob, MarkedFrame, RecountJob
from webapp.cameras.models import Camera, Site, Zone
from webapp.ingest.models import Frame
from webapp.ingest.results import Counted, store_result
from webapp.notifications.dispatch import deliver
from webapp.notifications.models import Endpoint, Notification
from webapp.reports.models import Report, Subscription

HIDDEN = "ZZQ"  # in the name of every object of the site the person does not see

# Route -> what its path parameters name. A route listed here must answer 404 for another site's objects, and its
# list (no parameters) must leave them out.
SCOPED_ROUTES: dict[str, dict[str, str]] = {
    "api/v1/frames/<int:pk>/": {"pk": "frame"},
    "api/v1/frames/<int:pk>/image": {"pk": "frame"},
    "api/v1/frames/<int:pk>/heatmap.png": {"pk": "frame"},
    "api/v1/frames/<int:pk>/density.npz": {"pk": "frame"},
    "api/v1/frames/<int:pk>/density.json": {"pk": "frame"},
    "api/v1/frames/<int:pk>/proposals/": {"pk": "frame"},
    "api/v1/cameras/<int:pk>/counts/": {"pk": "camera"},
    "api/v1/alerts/": {},
    "api/v1/sites/": {},
    "api/v1/cameras/": {},
    "api/v1/cameras/<int:pk>/marked-frames/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/marked-frames/<int:mid>/": {"pk": "camera", "mid": "marked"},
    "api/v1/cameras/<int:pk>/marked-frames/<int:mid>/image": {"pk": "camera", "mid": "marked"},
    "api/v1/cameras/<int:pk>/calibration-frames/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/calibrations/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/calibrations/<int:job>/": {"pk": "camera", "job": "calibration"},
    "api/v1/cameras/<int:pk>/adaptations/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/adaptations/<int:job>/": {"pk": "camera", "job": "adaptation"},
    "api/v1/cameras/<int:pk>/weights/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/weights/activate/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/weights/rollback/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/weights.onnx": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/recounts/": {"pk": "camera"},
    "api/v1/cameras/<int:pk>/recounts/<int:job>/": {"pk": "camera", "job": "recount"},
    "reports/": {},
    "reports/new/": {},
    "reports/subscription/": {},
    "reports/<int:pk>/": {"pk": "report"},
    "reports/<int:pk>/ask/": {"pk": "report"},
    "alerts/": {},
    "alerts/<int:pk>/acknowledge/": {"pk": "alert"},
    "cameras/<int:pk>/calibrate/": {"pk": "camera"},
    "": {},
    "map/": {},
    "map/data.json": {},
    "sites/<int:pk>/": {"pk": "site"},
    "sites/<int:pk>/plan": {"pk": "site"},
    "cameras/<int:pk>/": {"pk": "camera"},
    "cameras/<int:pk>/frames.json": {"pk": "camera"},
    "cameras/<int:pk>/zones/": {"pk": "camera"},
    "cameras/<int:pk>/zones/new/": {"pk": "camera"},
    "cameras/<int:pk>/zones/<int:zone_id>/": {"pk": "camera", "zone_id": "zone"},
    "cameras/<int:pk>/zones/<int:zone_id>/delete/": {"pk": "camera", "zone_id": "zone"},
}
NOT_ABOUT_CAMERAS = {
    "admin/": "the admin site is for the admin role, which sees every site",
    "accounts/login/": "signing in",
    "accounts/logout/": "signing out",
    "accounts/oidc/authenticate/": "signing in with the identity provider",
    "accounts/oidc/callback/": "signing in with the identity provider",
    "api/v1/frames/": "gateways upload here, scoped to their own cameras (test_api_frame_upload)",
    "api/v1/edge-results/": "gateways post here, scoped to their own cameras (test_api_edge_results)",
    "api/schema/": "the API's description, no data",
    "api/docs/": "the API's description, no data",
}
# Routes whose answer is a 404 even for a person who sees every site, given the objects the test makes: the site has
# no plan; the camera counts with the default weights, so there is no ONNX copy to send.
NOT_FOUND_FOR_EVERYONE = {"sites/<int:pk>/plan", "api/v1/cameras/<int:pk>/weights.onnx"}


def routes() -> list[tuple[str, URLPattern]]:
    """Every route of the URL configuration with its full pattern, the admin site's as one."""
    found: list[tuple[str, URLPattern]] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if route == "admin/":
                    found.append((route, pattern))
                else:
                    walk(pattern.url_patterns, route)
            else:
                found.append((route, pattern))

    walk(get_resolver().url_patterns, "")
    return found


@dataclass
class SiteObjects:
    """One site's camera and an object of every kind the routes reach."""

    site: Site
    camera: Camera
    frame: int
    zone: int
    alert: int
    marked: int
    calibration: int
    adaptation: int
    recount: int
    report: int

    def ids(self) -> dict[str, int]:
        return {"site": self.site.pk, "camera": self.camera.pk} | {
            name: getattr(self, name)
            for name in ("frame", "zone", "alert", "marked", "calibration", "adaptation", "recount", "report")
        }


def site_objects(name: str, jpeg: bytes, first_id: int) -> SiteObjects:
    """A site with a camera and one object of every kind, their ids `first_id`, `first_id` + 1, ... (distinct from
    every other object's, so that an id in an answer tells which object it is)."""
    ids = iter(range(first_id, first_id + 100))
    site = Site.objects.create(pk=next(ids), name=f"{name} site")
    camera = Camera.objects.create(
        pk=next(ids), site=site, name=f"{name} camera", place=f"{name} place", alert_threshold=1
    )
    zone = Zone.objects.create(pk=next(ids), camera=camera, name=f"{name} zone", polygon=[[0, 0], [60, 0], [60, 60]])
    now = timezone.now().replace(microsecond=0)
    frame = queued_frame(camera, jpeg, captured_at=now - timedelta(minutes=1), pk=next(ids))
    counted = Counted(  # over the threshold: an alert
        count=5.0,
        density=np.full((30, 40), 5.0 / 1200, dtype=np.float32),
        zone_counts={zone.pk: 2.0},
        zone_names={zone.pk: zone.name},
        model_name="csrnet-lite",
        model_version="test.pt@000000000000",
        inference_ms=1.0,
    )
    store_result(Frame.objects.select_related("camera").get(pk=frame.pk), counted)
    alert = next(ids)
    Alert.objects.filter(camera=camera).update(id=alert)
    marked = MarkedFrame(pk=next(ids), camera=camera, frame=frame, width=320, height=240, points=[[10, 10]])
    marked.image.save("marked.jpg", ContentFile(jpeg), save=True)
    report = Report.objects.create(
        pk=next(ids),
        period_start=now - timedelta(days=1),
        period_end=now,
        timezone="UTC",
        status=Report.Status.DONE,
        text=f"{name} report",
    )
    report.cameras.set([camera])
    period = {"period_from": now - timedelta(days=1), "period_to": now}
    return SiteObjects(
        site=site,
        camera=camera,
        frame=frame.pk,
        zone=zone.pk,
        alert=alert,
        marked=marked.pk,
        calibration=CalibrationJob.objects.create(pk=next(ids), camera=camera, status="failed").pk,
        adaptation=AdaptationJob.objects.create(pk=next(ids), camera=camera, status="failed").pk,
        recount=RecountJob.objects.create(pk=next(ids), camera=camera, **period).pk,
        report=report.pk,
    )


@pytest.fixture
def two_sites(db, small_jpeg_bytes) -> tuple[SiteObjects, SiteObjects]:
    return site_objects("North", small_jpeg_bytes, 7100), site_objects(f"South {HIDDEN}", small_jpeg_bytes, 9100)


def url_of(route: str, objects: SiteObjects) -> str:
    names = SCOPED_ROUTES[route]
    ids = objects.ids()
    return "/" + re.sub(r"<int:(\w+)>", lambda match: str(ids[names[match.group(1)]]), route)


def answer(client, url: str):
    """GET the URL; for a view that only takes POST (or PUT, DELETE), the first of those it answers."""
    response = client.get(url)
    for method in ("post", "put", "delete"):
        if response.status_code != 405:
            break
        response = getattr(client, method)(url)
    return response


def shows_hidden(response, hidden: SiteObjects) -> list[str]:
    """What of the hidden site the response shows: its names, or its objects' ids in a JSON answer or in links."""
    body = b"".join(response) if response.streaming else response.content
    text = body.decode("utf-8", errors="replace")
    shown = [HIDDEN] if HIDDEN in text else []
    if response.get("Content-Type", "").startswith("application/json"):
        ids = set(hidden.ids().values())

        def walk(value, key: str = "") -> None:
            if isinstance(value, dict):
                for name, item in value.items():
                    walk(item, name)
            elif isinstance(value, list):
                for item in value:
                    walk(item, key)
            elif isinstance(value, int) and value in ids:
                shown.append(f"{key}={value}")

        walk(json.loads(text))
    ids = {str(each) for each in hidden.ids().values()}
    return shown + [f"/{link} in a link" for link in re.findall(r"/(\d+)(?=[/?\"'])", text) if link in ids]


def test_every_route_is_scoped_or_said_not_to_be_about_cameras():
    unknown = [route for route, _ in routes() if route not in SCOPED_ROUTES and route not in NOT_ABOUT_CAMERAS]
    assert not unknown, f"scope these views to the user's sites and list them in SCOPED_ROUTES: {unknown}"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR], ids=lambda role: role.group_name)
def test_every_view_scopes(client, pages, two_sites, role):
    seen, hidden = two_sites
    person = user_with_role(f"north-{role.group_name}", role)
    set_site_scope(person, [seen.site])
    everyone = user_with_role(f"city-{role.group_name}", role)  # every site: the control
    failures = []
    for route, _ in routes():
        if route not in SCOPED_ROUTES:
            continue
        if SCOPED_ROUTES[route]:
            client.force_login(everyone)
            control = answer(client, url_of(route, hidden)).status_code
            client.force_login(person)
            scoped = answer(client, url_of(route, hidden)).status_code
            own = answer(client, url_of(route, seen)).status_code
            refused_by_role = scoped == own == 403  # a viewer at an operator's view: whatever the object
            if scoped != 404 and not refused_by_role:
                failures.append(f"{route}: another site's object answered {scoped}, not 404")
            if role == Role.OPERATOR and route not in NOT_FOUND_FOR_EVERYONE and (control == 404 or own == 404):
                failures.append(f"{route}: 404 for a person who sees the object too ({control}, own {own})")
        else:
            client.force_login(person)
            response = answer(client, "/" + route)
            if response.status_code >= 500:
                failures.append(f"{route}: answered {response.status_code}")
            elif shown := shows_hidden(response, hidden):
                failures.append(f"{route}: shows the other site's {shown}")
    assert not failures, "\n".join(failures)


def test_lists_show_the_persons_own_sites(client, pages, two_sites):
    """The control of the walk: the same lists show the person's own site's objects."""
    seen, hidden = two_sites
    person = user_with_role("north-viewer", Role.VIEWER)
    set_site_scope(person, [seen.site])
    client.force_login(person)
    assert seen.camera.name in client.get("/").content.decode()
    assert [row["id"] for row in client.get("/api/v1/cameras/").json()["results"]] == [seen.camera.pk]
    assert [row["id"] for row in client.get("/api/v1/sites/").json()["results"]] == [seen.site.pk]
    assert [row["camera"] for row in client.get("/api/v1/alerts/").json()["alerts"]] == [seen.camera.pk]
    assert str(seen.report) in client.get("/reports/").content.decode() or f"/reports/{seen.report}/" in (
        client.get("/reports/").content.decode()
    )
    set_site_scope(person, None)
    person.refresh_from_db()
    client.force_login(person)
    ids = {row["id"] for row in client.get("/api/v1/cameras/").json()["results"]}
    assert ids == {seen.camera.pk, hidden.camera.pk}


def test_api_keys_carry_a_scope(two_sites):
    seen, hidden = two_sites
    key = ApiKey(name="north-dashboard", all_sites=False)
    secret = key.issue_secret()
    key.save()
    key.sites.set([seen.site])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert [row["id"] for row in api.get("/api/v1/cameras/").json()["results"]] == [seen.camera.pk]
    assert [row["camera"] for row in api.get("/api/v1/alerts/").json()["alerts"]] == [seen.camera.pk]
    assert api.get(f"/api/v1/cameras/{hidden.camera.pk}/counts/").status_code == 404
    assert api.get(f"/api/v1/frames/{hidden.frame}/").status_code == 404
    assert api.get(f"/api/v1/cameras/{seen.camera.pk}/counts/").status_code == 200


def test_admins_see_every_site_whatever_their_scope(client, pages, two_sites):
    seen, hidden = two_sites
    admin = user_with_role("city-admin", Role.ADMIN)
    set_site_scope(admin, [seen.site])
    assert visible_site_ids(admin) is None
    client.force_login(admin)
    assert client.get(f"/cameras/{hidden.camera.pk}/").status_code == 200


def test_a_scope_of_no_site_shows_nothing_and_cameras_of_no_site_need_every_site(client, pages, two_sites):
    seen, _ = two_sites
    loose = Camera.objects.create(name=f"Loose {HIDDEN}")
    person = user_with_role("nowhere", Role.VIEWER)
    set_site_scope(person, [])
    client.force_login(person)
    assert client.get("/api/v1/cameras/").json()["results"] == []
    assert client.get(f"/cameras/{seen.camera.pk}/").status_code == 404
    set_site_scope(person, [seen.site])
    assert client.get(f"/cameras/{loose.pk}/").status_code == 404


def test_a_narrowed_scope_narrows_the_daily_email(two_sites):
    seen, hidden = two_sites
    person = user_with_role("subscriber", Role.VIEWER, email="subscriber@example.org")
    subscription = Subscription.objects.create(user=person)
    subscription.sites.set([seen.site, hidden.site])
    assert {camera.pk for camera in subscription.report_cameras()} == {seen.camera.pk, hidden.camera.pk}
    set_site_scope(person, [seen.site])
    assert [camera.pk for camera in subscription.report_cameras()] == [seen.camera.pk]


def test_set_sites_command(two_sites):
    seen, _ = two_sites
    person = user_with_role("district", Role.OPERATOR)
    call_command("set_sites", "district", seen.site.name)
    assert visible_site_ids(person) == {seen.site.pk}
    person = type(person).objects.get(pk=person.pk)
    call_command("set_sites", "district", "--all")
    assert visible_site_ids(person) is None
    with pytest.raises(Exception, match="no site named 'Atlantis'"):
        call_command("set_sites", "district", "Atlantis")


def test_create_api_key_with_sites(two_sites, capsys):
    seen, hidden = two_sites
    call_command("create_api_key", "north-board", "--sites", seen.site.name)
    key = ApiKey.objects.get(name="north-board")
    assert visible_site_ids(key) == {seen.site.pk}
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {capsys.readouterr().out.strip()}")
    assert api.get(f"/api/v1/cameras/{hidden.camera.pk}/counts/").status_code == 404
    with pytest.raises(Exception, match="no site named 'Atlantis'"):
        call_command("create_api_key", "lost-board", "--sites", "Atlantis")
    assert not ApiKey.objects.filter(name="lost-board").exists()


def test_alert_emails_reach_only_people_who_see_the_camera(two_sites, smtp_inbox):
    seen, hidden = two_sites
    north = user_with_role("north-lead", Role.OPERATOR, email="north@city.example")
    set_site_scope(north, [seen.site])
    user_with_role("city-lead", Role.OPERATOR, email="City@City.example")
    endpoint = Endpoint.objects.create(
        name="duty",
        kind=Endpoint.Kind.EMAIL,
        recipients="north@city.example, city@city.example, pager@city.example",
    )
    endpoint.rules.create()
    notification = Notification.objects.create(endpoint=endpoint, alert_id=hidden.alert, event="raise")
    deliver(notification)
    notification = Notification.objects.create(endpoint=endpoint, alert_id=seen.alert, event="raise")
    deliver(notification)
    assert [recipients for recipients, _ in smtp_inbox.messages] == [
        ["city@city.example", "pager@city.example"],  # the north operator does not hear of the south
        ["north@city.example", "city@city.example", "pager@city.example"],
    ]


def test_an_admin_gives_a_person_sites_in_the_admin(client, pages, two_sites):
    seen, hidden = two_sites
    person = user_with_role("district-viewer", Role.VIEWER)
    client.force_login(user_with_role("city-admin", Role.ADMIN))
    form = {
        "username": person.username,
        "is_active": "on",
        "groups": [person.groups.get().pk],
        "date_joined_0": "2026-12-01",
        "date_joined_1": "08:00:00",
        "site_scope-TOTAL_FORMS": "1",
        "site_scope-INITIAL_FORMS": "0",
        "site_scope-MIN_NUM_FORMS": "0",
        "site_scope-MAX_NUM_FORMS": "1",
        "site_scope-0-sites": [seen.site.pk],
        "site_scope-0-user": person.pk,
    }
    response = client.post(f"/admin/auth/user/{person.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert visible_site_ids(type(person).objects.get(pk=person.pk)) == {seen.site.pk}
    client.force_login(person)
    assert client.get(f"/cameras/{hidden.camera.pk}/").status_code == 404
