"""Issue 41, finding 4: an endpoint's secret (an MQTT broker's password, a webhook's signing key) is kept apart from its
URL and never shown back by the admin, while deliveries still authenticate with it (a real mosquitto on loopback that
refuses anonymous clients); migration 0002 takes the passwords out of stored URLs and the answers out of the log."""

from __future__ import annotations

import datetime
import getpass
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.factories import frame_counted_by_worker
from tests.loopback import free_port
from webapp.alerts.models import Alert
from webapp.notifications import mqtt
from webapp.notifications.models import Endpoint, Notification

pytestmark = pytest.mark.django_db

USER, PASSWORD = "crowd", "s3cr3t: p@ss/word"  # characters a URL must percent-encode
URL_PASSWORD = "s3cr3t%3A%20p%40ss%2Fword"
ADD, LIST = "/admin/notifications/endpoint/add/", "/admin/notifications/endpoint/"


def connects(port: int, username: str | None, password: str | None) -> bool:
    """Whether the broker on `port` accepts a client with these credentials."""
    accepted, answered = [], threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    if username:
        client.username_pw_set(username, password)
    client.on_connect = lambda client, userdata, flags, reason, properties: (
        accepted.append(not reason.is_failure),
        answered.set(),
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(10), "the broker did not answer"
        return accepted[0]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def guarded_broker(settings, tmp_path: Path) -> Iterator[int]:
    """mosquitto on a free loopback port that accepts USER with PASSWORD alone; its port. Loopback is allowed."""
    assert shutil.which("mosquitto") and shutil.which("mosquitto_passwd"), "`make services` installs mosquitto"
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CELERY_TASK_ALWAYS_EAGER = True
    passwords, config, port = tmp_path / "passwords", tmp_path / "mosquitto.conf", free_port()
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True)
    # `user`: started as root, mosquitto would become the user "mosquitto", who cannot read the test's folder.
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\npersistence false\n"
        f"user {getpass.getuser()}\n"
    )
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            connects(port, USER, PASSWORD)
            break
        except OSError:
            assert time.monotonic() < deadline, f"mosquitto did not start: {process.stderr.read(2000)!r}"
            time.sleep(0.1)
    mqtt.mqtt_endpoints.forget()
    yield port
    mqtt.count_feed.close()
    mqtt.mqtt_endpoints.forget()
    process.terminate()
    process.wait(timeout=10)


def endpoint_form(**fields: str) -> dict[str, str]:
    """The admin's add/change form of an endpoint, without rules."""
    return {
        "kind": "mqtt",
        "topic_prefix": "crowdscope",
        "discovery": "on",
        "enabled": "on",
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        **fields,
    }


def test_an_mqtt_password_given_in_the_url_is_never_shown_and_still_authenticates(
    guarded_broker, camera, admin_client, pages, django_capture_on_commit_callbacks
):
    assert not connects(guarded_broker, None, None)  # the broker refuses whoever brings no password
    url = f"mqtt://{USER}:{URL_PASSWORD}@127.0.0.1:{guarded_broker}"
    added = admin_client.post(ADD, endpoint_form(name="home assistant", url=url))
    assert added.status_code == 302, added.content.decode()[:3000]
    endpoint = Endpoint.objects.get()
    assert (endpoint.url, endpoint.secret) == (f"mqtt://{USER}@127.0.0.1:{guarded_broker}", PASSWORD)

    pages_shown = [admin_client.get(LIST), admin_client.get(f"{LIST}{endpoint.pk}/change/")]
    for page in pages_shown:
        html = page.content.decode()
        assert page.status_code == 200 and f"mqtt://{USER}@127.0.0.1:{guarded_broker}" in html
        for shown in (PASSWORD, URL_PASSWORD, "s3cr3t"):
            assert shown not in html

    camera.alert_threshold = 50
    camera.save()
    endpoint.rules.create(camera=camera, on_clear=False)
    with django_capture_on_commit_callbacks(execute=True):
        frame_counted_by_worker(camera, timezone.now() - datetime.timedelta(minutes=5), 80)
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == ("delivered", 1), notification.last_error


def test_the_secret_field_keeps_replaces_or_forgets_the_stored_secret(admin_client, pages, settings):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    endpoint = Endpoint.objects.create(name="broker", kind="mqtt", url="mqtt://crowd@127.0.0.1", secret="first one")
    change = f"{LIST}{endpoint.pk}/change/"
    form = endpoint_form(name="broker", url="mqtt://crowd@127.0.0.1")
    assert "first one" not in admin_client.get(change).content.decode()

    assert admin_client.post(change, {**form, "secret": ""}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == "first one"  # blank: kept

    assert admin_client.post(change, {**form, "secret": "second one"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == "second one"
    assert "second one" not in admin_client.get(change).content.decode()

    assert admin_client.post(change, {**form, "forget_secret": "on"}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == ""


def test_a_webhook_signing_secret_made_by_the_admin_is_shown_once(admin_client, pages, settings):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    form = endpoint_form(name="ops", kind="webhook", url="http://127.0.0.1:9/hooks")
    shown_once = admin_client.post(ADD, form, follow=True).content.decode()
    endpoint = Endpoint.objects.get()
    assert len(endpoint.secret) >= 40 and f"The signing secret of ops is {endpoint.secret}." in shown_once
    for page in (LIST, f"{LIST}{endpoint.pk}/change/"):
        assert endpoint.secret not in admin_client.get(page).content.decode()


def test_a_webhook_url_with_a_password_is_refused(admin_client, pages, settings):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    form = endpoint_form(name="ops", kind="webhook", url="http://ops:hunter2@127.0.0.1:9/hooks")
    answer = admin_client.post(ADD, form)
    assert answer.status_code == 200 and not Endpoint.objects.exists()
    assert "a webhook URL takes no user name or password" in answer.content.decode()


@pytest.mark.django_db(transaction=True)
def test_migration_0002_takes_passwords_out_of_urls_and_answers_out_of_the_log(camera):
    executor = MigrationExecutor(connection)
    executor.migrate([("notifications", "0001_initial")])
    try:
        # bulk_create: rows as 0001 stored them, past today's save(), which would split them already.
        Endpoint.objects.bulk_create(
            [
                Endpoint(name="broker", kind="mqtt", url=f"mqtt://{USER}:{URL_PASSWORD}@broker.example:1884"),
                Endpoint(name="anonymous broker", kind="mqtt", url="mqtt://broker.example"),
                Endpoint(name="hook", kind="webhook", url="https://ops:hunter2@hooks.example/crowd", secret="key"),
            ]
        )
        alert = Alert.objects.create(
            camera=camera, kind=Alert.Kind.COUNT, threshold=50, value=80, peak=80, raised_at=timezone.now()
        )
        Notification.objects.bulk_create(
            [
                Notification(
                    endpoint=Endpoint.objects.get(name="hook"),
                    alert=alert,
                    event="raise",
                    last_error="ConnectionError: HTTP 500: Traceback ... DATABASE_PASSWORD=hunter2\nmore",
                ),
                Notification(
                    endpoint=Endpoint.objects.get(name="broker"), alert=alert, event="raise", last_error="OSError: x"
                ),
            ]
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    stored = {endpoint.name: (endpoint.url, endpoint.secret) for endpoint in Endpoint.objects.all()}
    assert stored == {
        "broker": (f"mqtt://{USER}@broker.example:1884", PASSWORD),
        "anonymous broker": ("mqtt://broker.example", ""),
        "hook": ("https://hooks.example/crowd", "key"),
    }
    errors = sorted(Notification.objects.values_list("last_error", flat=True))
    assert errors == ["ConnectionError: HTTP 500", "OSError: x"]
