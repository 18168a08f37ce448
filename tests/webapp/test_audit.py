"""The audit log (issue 41): each change a person makes to a camera (thresholds, weights in use), zone, site, gateway,
notification endpoint and rule, role or site scope, and each acknowledgement of an alert, is one entry saying who,
when, from which address (the client's, behind trusted proxies only) and what changed; secrets stay out; workers
raising alerts and people signing in write nothing; the admin shows the log and refuses every edit, superusers
included; the CSV export holds the entries of a period."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from auditlog.models import LogEntry
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import ago, calibrated_weights, frame_counted_by_worker, frame_with_result, user_with_role
from webapp.accounts.models import ApiKey
from webapp.accounts.roles import Role
from webapp.alerts.models import Alert
from webapp.audit.export import COLUMNS
from webapp.audit.registration import url_without_password
from webapp.calibration.jobs import store_version
from webapp.calibration.models import WeightsVersion
from webapp.cameras.models import Gateway, Site, Zone
from webapp.notifications.models import Endpoint, NotificationRule

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

CLIENT = "198.51.100.20"  # a person's address, as the web server sees it without a proxy
TRIANGLE = [[10, 10], [300, 20], [150, 200]]
UPDATE, CREATE = LogEntry.Action.UPDATE, LogEntry.Action.CREATE


class Person:
    """A signed-in test client and its user."""

    def __init__(self, client, user):
        self.client, self.user = client, user


def signed_in(client, username: str, role: Role | None, **fields) -> Person:
    user = user_with_role(username, role, **fields)
    client.force_login(user)
    return Person(client, user)


@pytest.fixture
def boss(client) -> Person:
    """A person with the admin role (staff, not superuser)."""
    return signed_in(client, "boss", Role.ADMIN)


@pytest.fixture
def operator_person(client) -> Person:
    return signed_in(client, "olga", Role.OPERATOR)


def latest_pk() -> int:
    """The id of the newest entry so far (0: none): what a test made before the change it looks at is older."""
    return LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def entries_since(mark: int, model=None) -> list[LogEntry]:
    entries = LogEntry.objects.filter(pk__gt=mark).select_related("content_type", "actor").order_by("pk")
    if model is not None:
        entries = [entry for entry in entries if entry.content_type.model_class() is model]
    return list(entries)


def form_values(data: dict, form: forms.Form) -> None:
    """Put what a browser posts back for `form`, untouched, into `data`."""
    for bound in form:
        if bound.field.disabled:
            continue
        value, widget = bound.value(), bound.field.widget
        if isinstance(widget, forms.MultiWidget):  # a date and a time in two inputs
            parts = zip(widget.widgets_names, widget.widgets, widget.decompress(value), strict=True)
            for suffix, part_widget, part in parts:
                if part is not None:
                    data[f"{bound.html_name}{suffix}"] = part_widget.format_value(part)
        elif isinstance(widget, forms.CheckboxInput):
            if value:
                data[bound.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [str(item) for item in value]
        elif value is not None:
            data[bound.html_name] = str(value)


def admin_post(client, path: str, changes: dict, **request) -> None:
    """Open the admin's add or change page at `path`, change `changes` in its form and save it, as a person does;
    `request` gives the request's META (REMOTE_ADDR, HTTP_X_FORWARDED_FOR)."""
    page = client.get(path)
    assert page.status_code == 200, path
    data: dict = {}
    form_values(data, page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        form_values(data, inline.formset.management_form)
        for form in inline.formset.forms:
            form_values(data, form)
    response = client.post(path, {**data, **changes}, **request)
    errors = response.context["adminform"].form.errors if response.status_code == 200 else None
    assert response.status_code == 302, errors


def test_a_cameras_thresholds_changed_in_the_admin_are_one_entry_with_who_and_where(boss, camera):
    Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)  # an inline left as it is: no entry
    mark = latest_pk()
    admin_post(
        boss.client,
        f"/admin/cameras/camera/{camera.pk}/change/",
        {"alert_threshold": "40", "alert_after_frames": "3", "unusual_alert_percent": "150"},
        REMOTE_ADDR=CLIENT,
    )
    [entry] = entries_since(mark)
    assert (entry.object_id, entry.action, entry.actor, entry.remote_addr) == (camera.pk, UPDATE, boss.user, CLIENT)
    assert entry.changes_dict == {
        "alert_threshold": ["None", "40.0"],
        "alert_after_frames": ["1", "3"],
        "unusual_alert_percent": ["None", "150.0"],
    }


def test_a_site_changed_in_the_admin_is_recorded(boss, site):
    mark = latest_pk()
    admin_post(boss.client, f"/admin/cameras/site/{site.pk}/change/", {"time_zone": "Asia/Shanghai"})
    [entry] = entries_since(mark)
    assert (entry.object_repr, entry.actor) == ("Central Station", boss.user)
    assert entry.changes_dict == {"time_zone": ["UTC", "Asia/Shanghai"]}


@pytest.mark.parametrize(
    ("trusted_proxies", "remote_addr", "forwarded_for", "recorded"),
    [
        # No proxy: whatever the client writes in X-Forwarded-For is ignored (django-auditlog took its left end).
        (0, CLIENT, "203.0.113.66", CLIENT),
        # One proxy, which appends the address it was reached from: the client's forged entry on the left is not it.
        (1, "10.0.0.2", f"203.0.113.66, {CLIENT}", CLIENT),
    ],
)
def test_the_address_is_the_clients_behind_trusted_proxies_only(
    settings, operator_person, camera, trusted_proxies, remote_addr, forwarded_for, recorded
):
    settings.CROWDSCOPE_TRUSTED_PROXIES = trusted_proxies
    zone = Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    mark = latest_pk()
    response = operator_person.client.post(
        f"/cameras/{camera.pk}/zones/{zone.pk}/",
        {"name": "gate", "polygon": json.dumps(TRIANGLE), "alert_threshold": "25"},
        REMOTE_ADDR=remote_addr,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )
    assert response.status_code == 302
    [entry] = entries_since(mark)
    assert (entry.actor, entry.remote_addr) == (operator_person.user, recorded)


def test_a_zone_drawn_and_changed_in_the_zone_editor_is_recorded(operator_person, camera):
    mark = latest_pk()
    editor = f"/cameras/{camera.pk}/zones/"
    operator_person.client.post(f"{editor}new/", {"name": "gate", "polygon": json.dumps(TRIANGLE)}, REMOTE_ADDR=CLIENT)
    zone = Zone.objects.get(camera=camera)
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    operator_person.client.post(
        f"{editor}{zone.pk}/", {"name": "gate", "polygon": json.dumps(square), "alert_threshold": "12"}
    )
    operator_person.client.post(f"{editor}{zone.pk}/delete/")

    created, changed, deleted = entries_since(mark)
    assert [entry.action for entry in (created, changed, deleted)] == [CREATE, UPDATE, LogEntry.Action.DELETE]
    assert {entry.actor for entry in (created, changed, deleted)} == {operator_person.user}
    assert created.remote_addr == CLIENT and json.loads(created.changes_dict["polygon"][1]) == TRIANGLE
    assert changed.changes_dict["alert_threshold"] == ["None", "12.0"]
    assert json.loads(changed.changes_dict["polygon"][1]) == square


def test_a_gateway_is_recorded_without_its_token(boss, camera, other_camera):
    mark = latest_pk()
    admin_post(
        boss.client, "/admin/cameras/gateway/add/", {"name": "north", "cameras": [str(camera.pk)], "is_active": "on"}
    )
    gateway = Gateway.objects.get(name="north")
    admin_post(
        boss.client,
        f"/admin/cameras/gateway/{gateway.pk}/change/",
        {"cameras": [str(other_camera.pk)], "is_active": ""},
    )
    entries = entries_since(mark)
    assert {entry.actor for entry in entries} == {boss.user}
    created, *changed = [entry.changes_dict for entry in entries]
    assert entries[0].action == CREATE
    assert (created["name"], created["is_active"], created["token_prefix"]) == (
        ["None", "north"],
        ["None", "True"],
        ["None", gateway.token_prefix],
    )
    assert changed == [
        {"cameras": {"type": "m2m", "operation": "add", "objects": [str(camera)]}},  # saved after the gateway
        {"is_active": ["True", "False"]},
        {"cameras": {"type": "m2m", "operation": "delete", "objects": [str(camera)]}},
        {"cameras": {"type": "m2m", "operation": "add", "objects": [str(other_camera)]}},
    ]
    logged = json.dumps([entry.changes_dict for entry in entries])
    assert "token_hash" not in logged and gateway.token_hash not in logged


def test_an_endpoint_and_its_rule_are_recorded_without_the_secret(admin_client, admin_user, camera):
    mark = latest_pk()
    admin_post(
        admin_client,
        "/admin/notifications/endpoint/add/",
        {
            "name": "control room",
            "kind": "webhook",
            "url": "https://8.8.8.8/hook",
            "secret": "the-signing-key-nobody-may-read",
            "rules-0-camera": str(camera.pk),
        },
    )
    endpoint = Endpoint.objects.get(name="control room")
    entries = entries_since(mark)
    assert [(entry.content_type.model_class(), entry.action) for entry in entries] == [
        (Endpoint, CREATE),
        (NotificationRule, CREATE),
    ]
    assert {entry.actor for entry in entries} == {admin_user}
    assert entries[0].changes_dict["url"] == ["None", "https://8.8.8.8/hook"]
    assert entries[1].changes_dict["camera"] == ["None", str(camera)]
    logged = json.dumps([entry.changes_dict for entry in entries])
    assert "secret" not in logged and endpoint.secret not in logged


def test_a_password_in_an_endpoint_url_is_never_kept():
    assert (
        url_without_password("mqtt://hass:hunter2@broker.example.org:1883") == "mqtt://hass:***@broker.example.org:1883"
    )
    assert url_without_password("mqtt://broker.example.org") == "mqtt://broker.example.org"
    assert "hunter2" not in url_without_password("mqtt://hass:hunter2@[::1")  # no parse, nothing kept


def test_a_role_given_in_the_admin_is_recorded(boss):
    someone = user_with_role("vera", Role.VIEWER)
    mark = latest_pk()
    operators = Group.objects.get(name=Role.OPERATOR.group_name)
    admin_post(
        boss.client,
        f"/admin/auth/user/{someone.pk}/change/",
        {"groups": [str(operators.pk)], "is_active": ""},
        REMOTE_ADDR=CLIENT,
    )
    entries = entries_since(mark)
    assert {(entry.object_id, entry.actor, entry.remote_addr) for entry in entries} == {(someone.pk, boss.user, CLIENT)}
    changes = [entry.changes_dict for entry in entries]
    assert {"is_active": ["True", "False"]} in changes
    assert {"groups": {"type": "m2m", "operation": "delete", "objects": ["viewer"]}} in changes
    assert {"groups": {"type": "m2m", "operation": "add", "objects": ["operator"]}} in changes
    assert "password" not in json.dumps(changes)


def test_a_superuser_made_in_the_admin_is_recorded(admin_client, admin_user):
    someone = user_with_role("sam", Role.ADMIN)
    mark = latest_pk()
    admin_post(admin_client, f"/admin/auth/user/{someone.pk}/change/", {"is_superuser": "on"})
    [entry] = entries_since(mark)
    assert (entry.actor, entry.changes_dict) == (admin_user, {"is_superuser": ["False", "True"]})


def test_signing_in_writes_nothing(client):
    user_with_role("vera", Role.VIEWER)
    mark = latest_pk()
    response = client.post("/accounts/login/", {"username": "vera", "password": "not-used"})
    assert response.status_code == 302 and get_user_model().objects.get(username="vera").last_login is not None
    assert entries_since(mark) == []


def test_a_site_scope_set_by_the_command_is_recorded_as_no_persons(site):
    Site.objects.create(name="Harbour")
    someone = user_with_role("vera", Role.VIEWER)
    mark = latest_pk()
    call_command("set_sites", "vera", "Harbour", stdout=io.StringIO())
    entries = entries_since(mark)
    assert {(entry.object_repr, entry.actor) for entry in entries} == {(f"sites of {someone}", None)}
    changes = [entry.changes_dict for entry in entries]
    assert {"all_sites": ["True", "False"]} in changes
    assert {"sites": {"type": "m2m", "operation": "add", "objects": ["Harbour"]}} in changes


def test_an_api_keys_sites_changed_in_the_admin_are_recorded(admin_client, admin_user, site):
    key = ApiKey(name="home-assistant")
    key.issue_secret()
    key.save()
    mark = latest_pk()
    admin_post(admin_client, f"/admin/accounts/apikey/{key.pk}/change/", {"all_sites": "", "sites": [str(site.pk)]})
    entries = entries_since(mark)
    assert {entry.actor for entry in entries} == {admin_user}
    changes = [entry.changes_dict for entry in entries]
    assert {"all_sites": ["True", "False"]} in changes
    assert {"sites": {"type": "m2m", "operation": "add", "objects": ["Central Station"]}} in changes
    assert key.key_hash not in json.dumps(changes)


def test_the_weights_version_switched_through_the_api_is_recorded(operator_person, camera):
    first, second = calibrated_weights(camera, 1), calibrated_weights(camera, 2)
    mark = latest_pk()
    weights = f"/api/v1/cameras/{camera.pk}/weights/"
    activated = operator_person.client.post(
        f"{weights}activate/", {"version": second.pk}, content_type="application/json", REMOTE_ADDR=CLIENT
    )
    assert activated.status_code == 200
    assert operator_person.client.post(f"{weights}rollback/").status_code == 200

    switched, rolled_back = entries_since(mark)
    assert (switched.object_id, switched.actor, switched.remote_addr) == (camera.pk, operator_person.user, CLIENT)
    assert switched.changes_dict == {"active_weights": ["None", str(second)]}
    assert (rolled_back.actor, rolled_back.changes_dict) == (
        operator_person.user,
        {"active_weights": [str(second), str(first)]},
    )


def test_a_person_the_rest_api_authenticates_in_the_view_is_the_actor(camera):
    person = user_with_role("olga", Role.OPERATOR)
    version = calibrated_weights(camera, 1)
    api = APIClient()
    api.force_authenticate(person)  # no session: who it is is known inside the view only, after every middleware
    mark = latest_pk()
    activate = f"/api/v1/cameras/{camera.pk}/weights/activate/"
    assert api.post(activate, {"version": version.pk}, format="json").status_code == 200
    [entry] = entries_since(mark)
    assert entry.actor == person


def test_a_weights_switch_by_a_calibration_job_is_recorded_as_no_persons(camera, operator_person, tmp_path):
    tuned, onnx = tmp_path / "tuned.pt", tmp_path / "tuned.onnx"
    tuned.write_bytes(b"weights")
    onnx.write_bytes(b"onnx")
    version = WeightsVersion(
        camera=camera,
        number=1,
        arch="csrnet-lite",
        held_out_mae_before=9.0,
        held_out_mae_after=3.0,
        held_out_frames=12,
        created_by=operator_person.user,
    )
    mark = latest_pk()
    store_version(version, tuned, onnx, [])
    [entry] = entries_since(mark, model=type(camera))
    assert (entry.actor, entry.changes_dict) == (None, {"active_weights": ["None", str(version)]})
    assert entry.additional_data == {"switched_by": "Calibrated weights job", "job_started_by": "olga"}


def test_an_acknowledgement_is_recorded_once(operator_person, camera):
    frame = frame_with_result(camera, ago(minutes=5), 60)
    alert = Alert.objects.create(
        camera=camera, threshold=50, value=60, peak=60, frame=frame, raised_at=frame.captured_at
    )
    mark = latest_pk()
    acknowledge = f"/alerts/{alert.pk}/acknowledge/"
    assert operator_person.client.post(acknowledge, REMOTE_ADDR=CLIENT).status_code == 302
    assert operator_person.client.post(acknowledge).status_code == 302  # the first acknowledgement stands

    [entry] = entries_since(mark)
    assert (entry.object_id, entry.actor, entry.remote_addr) == (alert.pk, operator_person.user, CLIENT)
    assert entry.changes_dict["state"] == ["open", "acknowledged"]
    assert entry.changes_dict["acknowledged_by"] == ["None", "olga"]
    assert set(entry.changes_dict) == {"state", "acknowledged_by", "acknowledged_at"}


def test_alerts_raised_followed_and_ended_by_the_workers_write_nothing(camera):
    camera.alert_threshold = 50
    camera.save()
    mark = latest_pk()
    for minutes_ago, count in zip([40, 30, 20, 10], [60, 75, 70, 40], strict=True):  # raised, peak, ended
        frame_counted_by_worker(camera, ago(minutes=minutes_ago), count)
    alert = Alert.objects.get()
    assert alert.peak == 75 and alert.ended_at is not None
    assert entries_since(mark) == []


@pytest.fixture
def entry(site) -> LogEntry:
    return LogEntry.objects.get_for_object(site).get()


def test_the_admin_refuses_to_change_or_delete_entries_even_for_superusers(admin_client, entry):
    base = f"/admin/auditlog/logentry/{entry.pk}"
    assert admin_client.get(f"{base}/change/").status_code == 200  # shown, read-only
    assert admin_client.post(f"{base}/change/", {"object_repr": "nothing happened"}).status_code == 403
    assert admin_client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post("/admin/auditlog/logentry/add/", {"object_repr": "made up"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [str(entry.pk)], "post": "yes"}
    admin_client.post("/admin/auditlog/logentry/", bulk)
    assert LogEntry.objects.get(pk=entry.pk).object_repr == entry.object_repr


def test_admins_read_the_log_and_others_do_not(client, entry):
    signed_in(client, "boss", Role.ADMIN)
    assert client.get("/admin/auditlog/logentry/").status_code == 200
    assert client.get(f"/admin/auditlog/logentry/{entry.pk}/change/").status_code == 200
    signed_in(client, "olga", Role.OPERATOR)
    assert client.get("/admin/auditlog/logentry/").status_code == 302
    assert client.get("/admin/auditlog/logentry/export.csv").status_code == 302


def export(client, **period) -> list[dict]:
    response = client.get("/admin/auditlog/logentry/export.csv", period)
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def test_the_csv_export_holds_the_entries_of_a_period(boss, camera):
    zone = Zone.objects.create(camera=camera, name="gate", polygon=TRIANGLE)
    boss.client.post(
        f"/cameras/{camera.pk}/zones/{zone.pk}/",
        {"name": "gate", "polygon": json.dumps(TRIANGLE), "alert_threshold": "25"},
        REMOTE_ADDR=CLIENT,
    )
    changed = LogEntry.objects.get_for_object(zone).get(action=UPDATE)
    LogEntry.objects.filter(pk=changed.pk).update(timestamp=datetime(2026, 12, 5, 9, 30, tzinfo=UTC))

    rows = export(boss.client)
    assert len(rows) == LogEntry.objects.count()
    [row] = [row for row in rows if row["object type"] == "cameras.zone" and row["action"] == "update"]
    assert row == {
        "time": "2026-12-05T09:30:00+00:00",
        "actor": "boss",
        "address": CLIENT,
        "object type": "cameras.zone",
        "object id": str(zone.pk),
        "object": str(zone),
        "action": "update",
        "changes": json.dumps({"alert_threshold": ["None", "25.0"]}),
        "details": "",
    }
    assert [r["object id"] for r in export(boss.client, since="2026-12-05", until="2026-12-05")] == [str(zone.pk)]
    assert export(boss.client, since="2026-12-05T09:31:00Z", until="2026-12-06") == []


def test_the_csv_export_refuses_a_period_it_cannot_read(boss):
    response = boss.client.get("/admin/auditlog/logentry/export.csv", {"since": "last tuesday"})
    assert response.status_code == 400 and "since='last tuesday' is neither a date" in response.content.decode()
    response = boss.client.get("/admin/auditlog/logentry/export.csv", {"until": "2026-02-30"})
    assert response.status_code == 400 and "until='2026-02-30'" in response.content.decode()


def test_the_csv_export_keeps_a_formula_as_text(boss):
    Site.objects.create(name='=HYPERLINK("http://evil.example","open")')
    [row] = [row for row in export(boss.client) if row["object type"] == "cameras.site"]
    assert row["object"] == '\'=HYPERLINK("http://evil.example","open")'
