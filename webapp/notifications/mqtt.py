"""MQTT: the latest count of every camera and zone as retained state topics, each alert event, and Home Assistant's
MQTT discovery, so that a camera appears in Home Assistant as a device with a people sensor per view and zone and a
problem sensor that is on while an alert episode is open.

Topics under the endpoint's prefix P (default "crowdscope"), camera and zone by id:
- P/camera/ID/state (retained): {"count", "captured_at", "camera", "site"}
- P/camera/ID/zone/ZONE_ID/state (retained): {"count", "per_m2", "zone", "captured_at"}
- P/camera/ID/alert (retained): {"state": "on"|"off", "alert"}, on while any episode of the camera is open
- P/alerts (not retained): every raise, escalation and clear, the webhook's JSON
- homeassistant/{sensor,binary_sensor}/crowdscope_ID[_zone_ZONE_ID|_alert]/config (retained), with discovery on

A broker's host is checked (egress.checked_addresses) before each connection, and the connection goes to the address
checked, never to a new resolution of the name.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho

from webapp.cameras.models import Camera
from webapp.ingest.models import Frame
from webapp.notifications import egress
from webapp.notifications.models import Endpoint

log = logging.getLogger(__name__)

DISCOVERY_PREFIX = "homeassistant"
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    username: str
    password: str = field(repr=False)  # never in a log line

    @classmethod
    def of(cls, url: str, password: str = "") -> Broker:
        """The broker of an endpoint's `url` (mqtt://[user@]host[:port]) and secret (`password`)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "", parts.port or 1883, unquote(parts.username or ""), password)

    @classmethod
    def of_endpoint(cls, endpoint: Endpoint) -> Broker:
        return cls.of(endpoint.url, endpoint.secret)

    def client(self) -> tuple[paho.Client, str]:
        """A client with this broker's credentials, and the address to connect it to: the host's, checked now.
        Raises egress.RefusedDestination or egress.UnresolvedHost."""
        address = egress.checked_addresses(self.host, self.port)[0]
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        if self.username:  # MQTT sends no password without a user name
            client.username_pw_set(self.username, self.password or None)
        return client, address


@dataclass(frozen=True)
class Message:
    topic: str
    payload: dict
    retain: bool

    def as_paho(self) -> dict:
        return {"topic": self.topic, "payload": json.dumps(self.payload), "qos": 1, "retain": self.retain}


def camera_topic(prefix: str, camera_id: int) -> str:
    return f"{prefix}/camera/{camera_id}"


def count_messages(prefix: str, camera: Camera, captured_at: str, count: float, zones: list[dict]) -> list[Message]:
    """The camera's and each zone's state; `zones` holds {"id", "name", "count", "per_m2"}."""
    base = camera_topic(prefix, camera.pk)
    site = camera.site.name if camera.site_id else None
    messages = [
        Message(
            f"{base}/state",
            {"count": round(count, 2), "captured_at": captured_at, "camera": camera.name, "site": site},
            True,
        )
    ]
    for zone in zones:
        payload = {
            "count": round(zone["count"], 2),
            "per_m2": zone["per_m2"],
            "zone": zone["name"],
            "captured_at": captured_at,
        }
        messages.append(Message(f"{base}/zone/{zone['id']}/state", payload, True))
    return messages


def discovery_messages(prefix: str, camera: Camera, zones: list[dict]) -> list[Message]:
    """Home Assistant discovery: one device per camera with its sensors."""
    base = camera_topic(prefix, camera.pk)
    device = {
        "identifiers": [f"crowdscope_{camera.pk}"],
        "name": camera.name,
        "manufacturer": "CrowdScope",
        "model": "crowd-counting camera",
    }
    people = {
        "unit_of_measurement": "people",
        "state_class": "measurement",
        "icon": "mdi:account-group",
        "value_template": "{{ value_json.count }}",
        "device": device,
    }
    messages = [
        Message(
            f"{DISCOVERY_PREFIX}/sensor/crowdscope_{camera.pk}/config",
            {**people, "name": "People", "unique_id": f"crowdscope_{camera.pk}_count", "state_topic": f"{base}/state"},
            True,
        ),
        Message(
            f"{DISCOVERY_PREFIX}/binary_sensor/crowdscope_{camera.pk}_alert/config",
            {
                "name": "Crowd alert",
                "unique_id": f"crowdscope_{camera.pk}_alert",
                "device_class": "problem",
                "state_topic": f"{base}/alert",
                "value_template": "{{ value_json.state }}",
                "payload_on": "on",
                "payload_off": "off",
                "device": device,
            },
            True,
        ),
    ]
    for zone in zones:
        messages.append(
            Message(
                f"{DISCOVERY_PREFIX}/sensor/crowdscope_{camera.pk}_zone_{zone['id']}/config",
                {
                    **people,
                    "name": f"People in {zone['name']}",
                    "unique_id": f"crowdscope_{camera.pk}_zone_{zone['id']}",
                    "state_topic": f"{base}/zone/{zone['id']}/state",
                },
                True,
            )
        )
    return messages


def send(broker: Broker, messages: list[Message]) -> None:
    """Publish `messages` at QoS 1 and return once the broker has them; raises OSError (egress.UnresolvedHost
    included), TimeoutError or egress.RefusedDestination otherwise."""
    client, address = broker.client()
    client.connect(address, broker.port, keepalive=CONNECT_TIMEOUT_S)
    client.loop_start()
    try:
        for message in messages:
            sent = client.publish(**message.as_paho())
            sent.wait_for_publish(timeout=CONNECT_TIMEOUT_S)
            if not sent.is_published():
                raise TimeoutError(f"the broker {broker.host}:{broker.port} did not take {message.topic}")
    finally:
        client.disconnect()
        client.loop_stop()


class CountFeed:
    """One connection per broker for the life of a worker process: a count is published after each stored result
    without a connection of its own, and a broker that is away costs the worker nothing (the next count replaces a
    lost one: the state topics are retained, not a log)."""

    def __init__(self) -> None:
        self._clients: dict[Broker, paho.Client] = {}
        self._newest: dict[int, datetime] = {}  # camera id -> the newest frame time published by this process
        self._discovered: set[tuple[Broker, str]] = set()  # (broker, the configs' JSON) published by this process
        self._lock = threading.Lock()

    def _client(self, broker: Broker) -> paho.Client:
        """The broker's client, connected (and reconnected) to the address checked when it was made."""
        with self._lock:
            if broker not in self._clients:
                client, address = broker.client()
                client.max_queued_messages_set(1000)  # while away: bounded, oldest kept (retained state anyway)
                client.connect_async(address, broker.port, keepalive=60)
                client.loop_start()
                self._clients[broker] = client
            return self._clients[broker]

    def publish(self, broker: Broker, messages: list[Message], discovery: list[Message]) -> None:
        """`discovery` goes out the first time this process sees it (again after a camera or zone changes)."""
        client = self._client(broker)
        configs = json.dumps([message.as_paho() for message in discovery])
        if discovery and (broker, configs) not in self._discovered:
            for message in discovery:
                client.publish(**message.as_paho())
            self._discovered.add((broker, configs))
        for message in messages:
            client.publish(**message.as_paho())

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.loop_stop()
                client.disconnect()
            self._clients.clear()
            self._discovered.clear()
            self._newest.clear()

    def is_newest(self, camera_id: int, captured_at: datetime) -> bool:
        """True, and remembered, when no newer frame of the camera was published by this process: a back-filled
        frame must not pass for the latest count on a retained topic."""
        with self._lock:
            if captured_at < self._newest.get(camera_id, captured_at):
                return False
            self._newest[camera_id] = captured_at
            return True


count_feed = CountFeed()


class _MqttEndpoints:
    """The enabled MQTT endpoints, read again at most every `ttl_s` (a counting worker stores frames many times a
    second; an endpoint added in the admin reaches the feed within that time)."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s, self._read_at, self._endpoints = ttl_s, -ttl_s, []

    def get(self) -> list[Endpoint]:
        if time.monotonic() - self._read_at >= self.ttl_s:
            self._endpoints = list(Endpoint.objects.filter(kind=Endpoint.Kind.MQTT, enabled=True))
            self._read_at = time.monotonic()
        return self._endpoints

    def forget(self) -> None:
        """Read the endpoints again at the next count (after they changed in this process)."""
        self._read_at = -self.ttl_s


mqtt_endpoints = _MqttEndpoints()


def publish_on_count(sender, frame: Frame, count: float, zone_counts: dict[int, float], **_) -> None:
    """webapp.ingest.events.count_committed's receiver."""
    publish_counts(frame, count, zone_counts)


def publish_counts(frame: Frame, count: float, zone_counts: dict[int, float]) -> None:
    """After a result is stored: the camera's and its zones' latest counts to every enabled MQTT endpoint. Never
    raises: a broker that is away loses nothing the next count does not replace."""
    try:
        endpoints = mqtt_endpoints.get()
        if not endpoints or not count_feed.is_newest(frame.camera_id, frame.captured_at):
            return
        camera = frame.camera
        captured_at = frame.captured_at.astimezone(camera.zone).isoformat()
        zones = [
            {
                "id": zone.pk,
                "name": zone.name,
                "count": zone_counts[zone.pk],
                "per_m2": zone.people_per_m2(zone_counts[zone.pk]),
            }
            for zone in camera.zones.all()
            if zone.pk in zone_counts
        ]
        for endpoint in endpoints:
            messages = count_messages(endpoint.topic_prefix, camera, captured_at, count, zones)
            discovery = discovery_messages(endpoint.topic_prefix, camera, zones) if endpoint.discovery else []
            count_feed.publish(Broker.of_endpoint(endpoint), messages, discovery)
    except Exception:
        log.warning("MQTT: the counts of camera %s were not published", frame.camera_id, exc_info=True)
