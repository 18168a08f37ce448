"""Alert notifications against real servers on loopback: a webhook receiver (signed JSON, retried with back-off,
each event once), an SMTP server (aiosmtpd) and an MQTT broker (Debian's mosquitto, started here): raise, clear and
escalation events, the rules' scopes, the delivery log, and the latest counts and Home Assistant discovery on MQTT."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import paho.mqtt.client as paho
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import frame_counted_by_worker
from tests.loopback import free_port
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site, Zone
from webapp.ingest.models import Frame
from webapp.ingest.results import Counted, store_result
from webapp.notifications import mqtt
from webapp.notifications.dispatch import sweep
from webapp.notifications.models import Endpoint, Notification, NotificationRule

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server that keeps every request and answers with `answers` in turn (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/crowd"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [headers["X-CrowdScope-Event"] for headers, _ in self.requests]


@pytest.fixture
def eager(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CROWDSCOPE_BASE_URL = "https://crowd.example"


@pytest.fixture
def loopback_allowed(settings):
    """The receivers here live on loopback, which endpoints may reach only when an operator allows it."""
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def receiver(eager, loopback_allowed) -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def broker(eager, loopback_allowed, tmp_path) -> Iterator[str]:
    """mosquitto on a free loopback port, as a site's Home Assistant host runs it."""
    assert shutil.which("mosquitto"), "mosquitto is missing: `make services` installs it"
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.connect("127.0.0.1", port)
            client.disconnect()
            break
        except OSError:
            assert time.monotonic() < deadline, f"mosquitto did not start: {process.stderr.read(2000)!r}"
            time.sleep(0.1)
    mqtt.mqtt_endpoints.forget()  # endpoints another test left in this process's cache
    yield f"mqtt://127.0.0.1:{port}"
    mqtt.count_feed.close()
    mqtt.mqtt_endpoints.forget()
    process.terminate()
    process.wait(timeout=10)


class Subscriber:
    """A client reading every topic of the broker, retained messages included."""

    def __init__(self, url: str) -> None:
        self.messages: dict[str, list[tuple[dict, bool]]] = {}
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._received
        broker = mqtt.Broker.of(url)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("crowdscope/#", 1), ("homeassistant/#", 1)])
        self.client.loop_start()

    def _received(self, client, userdata, message) -> None:
        self.messages.setdefault(message.topic, []).append((json.loads(message.payload), message.retain))

    def wait_for(self, topic: str, count: int = 1, timeout: float = 10) -> list[tuple[dict, bool]]:
        deadline = time.monotonic() + timeout
        while len(self.messages.get(topic, [])) < count:
            assert time.monotonic() < deadline, f"no {topic} after {timeout} s; had {sorted(self.messages)}"
            time.sleep(0.05)
        return self.messages[topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def platform(camera) -> Camera:
    camera.alert_threshold = 50
    camera.save()
    camera.site.time_zone = "Asia/Shanghai"  # times in the payload and the email are on the site's clock
    camera.site.save()
    return camera


START = timezone.now() - timedelta(hours=1)


def stored(camera: Camera, minute: int, count: float, zones: dict[Zone, float] | None = None) -> Frame:
    return frame_counted_by_worker(camera, START + timedelta(minutes=minute), count, zones)


def webhook(url: str, **rule) -> Endpoint:
    endpoint = Endpoint.objects.create(name="ops webhook", kind=Endpoint.Kind.WEBHOOK, url=url)
    NotificationRule.objects.create(endpoint=endpoint, **rule)
    return endpoint


def test_a_webhook_hears_the_raise_and_the_clear_once_each_signed(
    platform, receiver, django_capture_on_commit_callbacks
):
    endpoint = webhook(receiver.url, site=platform.site)
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 0, 30)
        raising = stored(platform, 1, 62)
        stored(platform, 2, 70)  # the peak follows; nothing is sent
        stored(platform, 3, 20)
    assert receiver.events() == ["raise", "clear"]
    alert = Alert.objects.get()
    for (headers, body), event in zip(receiver.requests, ("raise", "clear"), strict=True):
        expected = hmac.new(endpoint.secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-CrowdScope-Signature"] == f"sha256={expected}"
        sent = json.loads(body)
        assert sent["event"] == event and sent["id"] == int(headers["X-CrowdScope-Delivery"])
        assert sent["alert"]["id"] == alert.pk and sent["alert"]["frame_id"] == raising.pk
        camera = {"id": platform.pk, "name": "Concourse", "site": "Central Station", "time_zone": "Asia/Shanghai"}
        assert sent["alert"]["camera"] == camera and sent["alert"]["raised_at"].endswith("+08:00")
        assert sent["alert"]["threshold"] == 50 and sent["alert"]["unit"] == "people"
        assert sent["alert"]["url"] == f"https://crowd.example/alerts/#alert-{alert.pk}"
    assert json.loads(receiver.requests[0][1])["alert"]["value"] == 62
    assert json.loads(receiver.requests[1][1])["alert"]["peak"] == 70
    log = Notification.objects.order_by("pk")
    assert [(n.event, n.status, n.attempts) for n in log] == [("raise", "delivered", 1), ("clear", "delivered", 1)]

    with django_capture_on_commit_callbacks(execute=True):
        again = Frame.objects.select_related("camera").get(pk=raising.pk)
        density = np.full((8, 8), 62 / 64, dtype=np.float32)
        assert store_result(again, Counted.of_density(platform, density, 62, "csrnet-lite", "test.pt@0", 1.0)) is None
    assert len(receiver.requests) == 2  # a frame stored twice sends nothing more


def test_a_refused_webhook_is_retried_and_each_attempt_logged(platform, receiver, django_capture_on_commit_callbacks):
    webhook(receiver.url, camera=platform, on_clear=False)
    receiver.answers = [500, 503]
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 0, 80)
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts, notification.last_error) == ("delivered", 3, "")
    assert receiver.events() == ["raise"] * 3
    assert len({headers["X-CrowdScope-Delivery"] for headers, _ in receiver.requests}) == 1  # one event, resent

    receiver.answers = [500] * 20
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 1, 10)
        stored(platform, 2, 90)
    given_up = Notification.objects.latest("pk")
    assert given_up.status == "failed" and given_up.attempts == 8
    assert given_up.last_error == "ConnectionError: HTTP 500 Internal Server Error"


def test_rules_cover_their_camera_or_site_and_skip_what_they_do_not_want(
    platform, receiver, django_capture_on_commit_callbacks
):
    other = Camera.objects.create(site=Site.objects.create(name="Harbour"), name="Pier", alert_threshold=5)
    webhook(receiver.url, site=other.site, on_raise=False)
    Endpoint.objects.create(name="off", kind=Endpoint.Kind.WEBHOOK, url=receiver.url, enabled=False).rules.create()
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 0, 90)  # another site's camera: not this rule's
        stored(other, 0, 9)  # raised, but the rule wants clears only
        stored(other, 1, 1)
    assert receiver.events() == ["clear"]
    assert json.loads(receiver.requests[0][1])["alert"]["camera"]["name"] == "Pier"


def test_an_alert_left_unacknowledged_escalates_once(
    platform, receiver, django_capture_on_commit_callbacks, django_user_model
):
    endpoint = webhook(receiver.url, escalate_after_minutes=30, on_clear=False)
    pager = Endpoint.objects.create(name="pager", kind=Endpoint.Kind.WEBHOOK, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 0, 90)  # raised an hour ago, still over its threshold
    receiver.requests.clear()
    Notification.objects.create(endpoint=pager, alert=Alert.objects.get(), event="escalate", status="delivered")
    with django_capture_on_commit_callbacks(execute=True):
        zone = Zone.objects.create(camera=platform, name="Stairs", polygon=[[0, 0], [1, 0], [1, 1]], alert_threshold=1)
        stored(platform, 59, 95, {zone: 3})  # the zone's alert is a minute old: not due yet
    assert receiver.events() == ["raise"]  # the zone's
    receiver.requests.clear()
    sweep(timezone.now())
    sweep(timezone.now())
    assert receiver.events() == ["escalate"]  # once: this endpoint's raise and another's escalation count for nothing
    assert json.loads(receiver.requests[0][1])["alert"]["zone"] is None
    assert Notification.objects.filter(endpoint=endpoint, event="escalate").count() == 1

    Alert.objects.get(zone_name="Stairs").acknowledge(django_user_model.objects.create_user("duty"))
    sweep(timezone.now() + timedelta(hours=2))
    assert receiver.events() == ["escalate"]  # acknowledged: nobody is chased


def test_a_notification_whose_task_was_lost_is_sent_by_the_sweep(platform, receiver):
    webhook(receiver.url)
    stored(platform, 0, 90)  # its commit hook never runs: as if the broker was away when it was sent
    assert receiver.events() == []
    sweep(timezone.now())
    assert receiver.events() == []  # not yet: its task may still be on its way
    sweep(timezone.now() + timedelta(minutes=11))
    assert receiver.events() == ["raise"]


def test_an_email_endpoint_gets_a_plain_message(platform, smtp_inbox, eager, django_capture_on_commit_callbacks):
    endpoint = Endpoint.objects.create(
        name="duty", kind=Endpoint.Kind.EMAIL, recipients="duty@station.example, lead@station.example"
    )
    endpoint.rules.create(camera=platform)
    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, 0, 64)
    [(recipients, message)] = smtp_inbox.messages
    assert recipients == ["duty@station.example", "lead@station.example"]
    assert message["Subject"] == "[CrowdScope] Alert: Concourse, 64.0 people (threshold 50)"
    alert = Alert.objects.get()
    body = message.get_content()
    assert f"https://crowd.example/alerts/#alert-{alert.pk}" in body
    assert f"Raised at {alert.raised_at.astimezone(platform.zone):%Y-%m-%d %H:%M} CST" in body


def test_mqtt_carries_counts_alerts_and_home_assistant_discovery(platform, broker, django_capture_on_commit_callbacks):
    zone = Zone.objects.create(camera=platform, name="Stairs", polygon=[[0, 0], [1, 0], [1, 1]], area_m2=10)
    endpoint = Endpoint.objects.create(name="home assistant", kind=Endpoint.Kind.MQTT, url=broker)
    endpoint.rules.create()
    subscriber = Subscriber(broker)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            stored(platform, 0, 12.345, {zone: 4})
        base = f"crowdscope/camera/{platform.pk}"
        [(state, retained)] = subscriber.wait_for(f"{base}/state")
        assert state["count"] == 12.35 and state["camera"] == "Concourse" and state["site"] == "Central Station"
        [(zone_state, _)] = subscriber.wait_for(f"{base}/zone/{zone.pk}/state")
        assert zone_state["count"] == 4 and zone_state["per_m2"] == 0.4 and zone_state["zone"] == "Stairs"
        [(sensor, _)] = subscriber.wait_for(f"homeassistant/sensor/crowdscope_{platform.pk}/config")
        assert sensor["state_topic"] == f"{base}/state" and sensor["unit_of_measurement"] == "people"
        assert sensor["value_template"] == "{{ value_json.count }}"
        assert sensor["device"]["identifiers"] == [f"crowdscope_{platform.pk}"]
        subscriber.wait_for(f"homeassistant/sensor/crowdscope_{platform.pk}_zone_{zone.pk}/config")
        [(problem, _)] = subscriber.wait_for(f"homeassistant/binary_sensor/crowdscope_{platform.pk}_alert/config")
        assert problem["device_class"] == "problem" and problem["state_topic"] == f"{base}/alert"

        for minute, count in ((1, 75), (2, 10)):
            with django_capture_on_commit_callbacks(execute=True):
                stored(platform, minute, count)
        raised, cleared = subscriber.wait_for("crowdscope/alerts", 2)
        assert (raised[0]["event"], cleared[0]["event"]) == ("raise", "clear") and not raised[1]
        on, off = subscriber.wait_for(f"{base}/alert", 2)
        assert (on[0]["state"], off[0]["state"]) == ("on", "off")
        assert [n.status for n in Notification.objects.all()] == ["delivered", "delivered"]
    finally:
        subscriber.close()

    with django_capture_on_commit_callbacks(execute=True):
        stored(platform, -5, 33)  # a frame back-filled late: older than the latest, it must not replace it
    late = Subscriber(broker)  # one who connects later still reads the latest state: it is retained
    try:
        [(state, retained)] = late.wait_for(f"crowdscope/camera/{platform.pk}/state")
        assert retained and state["count"] == 10 and state["captured_at"].endswith("+08:00")
        assert late.wait_for(f"crowdscope/camera/{platform.pk}/alert")[0][0]["state"] == "off"
    finally:
        late.close()


def test_endpoints_refuse_what_cannot_work():
    for fields, field in (
        ({"kind": "webhook", "url": "ftp://example.org/x"}, "url"),
        ({"kind": "mqtt", "url": "http://broker:1883"}, "url"),
        ({"kind": "mqtt", "url": "mqtt://broker:99999"}, "url"),
        ({"kind": "webhook", "url": "https://[::1/crowd"}, "url"),
        ({"kind": "email", "recipients": "not an address"}, "recipients"),
        ({"kind": "mqtt", "url": "mqtt://broker", "topic_prefix": "a/#"}, "topic_prefix"),
    ):
        with pytest.raises(ValidationError) as refused:
            Endpoint(name="x", **fields).full_clean()
        assert field in refused.value.message_dict
    Endpoint(name="ok", kind="webhook", url="https://hooks.example/crowd").full_clean()
