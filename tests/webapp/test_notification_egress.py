"""Issue 41, finding 1: an endpoint must not make the workers reach what sits on the private side of the network
(server-side request forgery). Each attack is played against real servers on loopback that would answer it; the
endpoint is refused when saved, the delivery refused before any connection, no redirect is followed and no answer's
body reaches the delivery log. No test sends anything beyond loopback: `guarded` refuses (and records) every other
connection, so an address that slipped through is a failure here, never traffic."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import frame_counted_by_worker
from webapp.cameras.models import Camera
from webapp.notifications import egress, mqtt
from webapp.notifications.models import Endpoint, Notification

pytestmark = pytest.mark.django_db

REAL_GETADDRINFO = socket.getaddrinfo
PUBLIC = "93.184.215.14"  # a public address the fake resolver answers with; nothing ever connects to it


class Server:
    """An HTTP server on a loopback address that records each request and answers `status` with `headers` and
    `body` (the reason phrase `reason`, when given)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, status: int = 200, body: bytes = b"") -> None:
        self.requests: list[dict[str, str]] = []
        self.status, self.body, self.headers, self.reason = status, body, {}, None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(dict(self.headers.items()))
                self.send_response(server.status, server.reason)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer((host, port), Handler)
        self.port = self.http.server_port
        self.url = f"http://{host}:{self.port}/hooks/crowd"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (append them), shut down after it."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture(autouse=True)
def guarded(monkeypatch) -> list[tuple]:
    """Every connection this test's process tries to an address beyond loopback: recorded and refused (ENETUNREACH)
    without a packet leaving the machine."""
    attempted: list[tuple] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def beyond_loopback(address) -> bool:
        if not isinstance(address, tuple):
            return False  # a Unix socket
        return not ipaddress.ip_address(address[0].split("%", 1)[0]).is_loopback

    def guarded_connect(sock, address):
        if beyond_loopback(address):
            attempted.append(address)
            raise OSError(101, "refused by the test: beyond loopback")
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        if beyond_loopback(address):
            attempted.append(address)
            return 101
        return connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield attempted
    assert attempted == [], "a connection beyond loopback was tried"


class Resolver:
    """socket.getaddrinfo answering `answers[name]` in turn (the last one again once they run out) for the names it
    is given, and as the system does for every other."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def getaddrinfo(self, host, port, *args, **kwargs):
        if host not in self.answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.asked.append(host)
        queue = self.answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]


@pytest.fixture
def resolver(monkeypatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


@pytest.fixture
def alerting(camera, settings) -> Camera:
    """A camera whose next count over 50 raises an alert, sent to the endpoints at once (tasks run eagerly)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    camera.alert_threshold = 50
    camera.save()
    return camera


def raise_alert(camera: Camera, endpoint: Endpoint, capture) -> Notification:
    """An alert of `camera` sent to `endpoint` alone (retried to the last attempt); its notification."""
    endpoint.rules.create(camera=camera, on_clear=False)
    with capture(execute=True):
        frame_counted_by_worker(camera, timezone.now() - datetime.timedelta(minutes=5), 80)
    return Notification.objects.get(endpoint=endpoint)


def unchecked_endpoint(url: str, kind: str = Endpoint.Kind.WEBHOOK) -> Endpoint:
    """An endpoint stored without its checks: saved before them, or by a name that resolved elsewhere then."""
    return Endpoint.objects.create(name=f"endpoint {url}", kind=kind, url=url)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("10.0.0.5", "private"),
        ("192.168.1.20", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd00::5", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "private"),
        ("100.100.100.200", "not globally routable"),  # a cloud's metadata service, in the shared 100.64.0.0/10
        ("::ffff:127.0.0.1", "loopback (127.0.0.1)"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local (169.254.169.254)"),
        ("2002:a00:5::1", "private (10.0.0.5)"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "link-local (169.254.169.254)"),  # NAT64
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_only_public_addresses_may_be_reached(address, reason):
    assert egress.refusal(ipaddress.ip_address(address)) == reason


def test_the_allowed_networks_open_private_addresses_and_nothing_else(settings):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["10.20.0.0/16", "127.0.0.0/8"]
    assert egress.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert egress.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert egress.refusal(ipaddress.ip_address("10.21.0.1")) == "private"
    assert egress.refusal(ipaddress.ip_address("::1")) == "loopback"


@pytest.mark.parametrize(
    ("kind", "url", "shown"),
    [
        ("webhook", "http://169.254.169.254/latest/meta-data/", "169.254.169.254: the address is link-local"),
        ("webhook", "http://10.0.0.5:6379/", "10.0.0.5: the address is private"),
        ("webhook", "http://[::1]:5432/", "::1: the address is loopback"),
        ("webhook", "https://localhost/hooks", "localhost (127.0.0.1): the address is loopback"),
        ("webhook", "http://[::ffff:127.0.0.1]:8000/", "::ffff:127.0.0.1: the address is loopback (127.0.0.1)"),
        ("webhook", "http://2130706433:8000/", "2130706433 (127.0.0.1): the address is loopback"),  # 127.0.0.1
        ("mqtt", "mqtt://10.0.0.5", "10.0.0.5: the address is private"),
        ("mqtt", "mqtt://user:pw@[fe80::1]:1883", "fe80::1: the address is link-local"),
    ],
)
def test_an_endpoint_to_a_private_address_is_refused_when_saved(kind, url, shown):
    with pytest.raises(ValidationError) as refused:
        Endpoint(name="inside", kind=kind, url=url).full_clean()
    [message] = refused.value.message_dict["url"]
    assert message.startswith(f"notifications may not go to {shown} ")
    assert "CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS" in message


def test_the_admin_form_says_why_an_endpoint_is_refused(admin_client, pages, servers):
    servers.append(internal := Server())
    answer = admin_client.post(
        "/admin/notifications/endpoint/add/",
        {
            "name": "metadata",
            "kind": "webhook",
            "url": f"http://localhost:{internal.port}/",
            "topic_prefix": "crowdscope",
            "enabled": "on",
            "rules-TOTAL_FORMS": "0",
            "rules-INITIAL_FORMS": "0",
        },
    )
    assert answer.status_code == 200 and not Endpoint.objects.exists()
    assert f"notifications may not go to localhost ({'127.0.0.1'}): the address is loopback" in answer.content.decode()
    assert internal.requests == []


def test_the_allowed_networks_let_an_operator_keep_a_private_receiver(settings):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    Endpoint(name="site broker", kind="mqtt", url="mqtt://10.0.0.5").full_clean()


def test_a_name_that_does_not_resolve_yet_is_taken_and_checked_when_sent(resolver):
    Endpoint(name="later", kind="webhook", url="https://hooks.invalid/crowd").full_clean()


def test_a_delivery_to_a_name_resolving_to_loopback_is_refused_before_connecting(
    alerting, servers, django_capture_on_commit_callbacks
):
    servers.append(internal := Server(body=b"internal answer"))
    endpoint = unchecked_endpoint(f"http://localhost:{internal.port}/admin")
    notification = raise_alert(alerting, endpoint, django_capture_on_commit_callbacks)
    assert internal.requests == []
    assert notification.status == "failed" and notification.attempts == 8
    assert notification.last_error.startswith(
        "RefusedDestination: notifications may not go to localhost (127.0.0.1): the address is loopback"
    )


def test_a_redirect_is_not_followed(alerting, settings, servers, django_capture_on_commit_callbacks):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the receiver is allowed; where it points is not
    servers.append(internal := Server(status=500, body=b"redis: -ERR wrong number of arguments"))
    servers.append(receiver := Server(status=307))
    receiver.headers = {"Location": internal.url}
    notification = raise_alert(alerting, unchecked_endpoint(receiver.url), django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 8 and internal.requests == []
    assert notification.last_error == "ConnectionError: HTTP 307 Temporary Redirect: redirect not followed"


def test_a_receivers_answer_never_reaches_the_delivery_log(
    alerting, settings, servers, admin_client, pages, django_capture_on_commit_callbacks
):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    servers.append(receiver := Server(status=500, body=b"DATABASE_PASSWORD=hunter2"))
    receiver.reason = "hunter2 in the reason too"
    notification = raise_alert(alerting, unchecked_endpoint(receiver.url), django_capture_on_commit_callbacks)
    assert notification.last_error == "ConnectionError: HTTP 500 Internal Server Error"
    log = admin_client.get("/admin/notifications/notification/").content.decode()
    assert "HTTP 500 Internal Server Error" in log and "hunter2" not in log


def test_an_answer_that_is_not_http_is_not_quoted(alerting, settings, django_capture_on_commit_callbacks):
    """A Redis-like service answers a request with its own words: the log says only that no HTTP came back."""
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_like_redis() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"-ERR unknown command 'POST', secret=hunter2\r\n")

    threading.Thread(target=answer_like_redis, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        notification = raise_alert(alerting, unchecked_endpoint(url), django_capture_on_commit_callbacks)
    finally:
        listener.close()
    assert notification.last_error == "ConnectionError: no HTTP answer from 127.0.0.1: BadStatusLine"


def test_mqtt_to_a_private_address_is_refused_before_connecting(alerting, guarded, django_capture_on_commit_callbacks):
    url = "mqtt://crowd:pw@10.0.0.5:1883"
    with pytest.raises(ValidationError):
        Endpoint(name="broker", kind="mqtt", url=url).full_clean()
    endpoint = unchecked_endpoint(url, kind=Endpoint.Kind.MQTT)
    notification = raise_alert(alerting, endpoint, django_capture_on_commit_callbacks)
    assert notification.last_error.startswith(
        "RefusedDestination: notifications may not go to 10.0.0.5: the address is private"
    )
    try:  # the latest counts too: the worker's long-lived connection is never made
        with pytest.raises(egress.RefusedDestination):
            mqtt.count_feed.publish(mqtt.Broker.of_endpoint(endpoint), [], [])
    finally:
        mqtt.count_feed.close()
        mqtt.mqtt_endpoints.forget()
    assert guarded == []


def test_a_name_that_resolves_elsewhere_after_the_save_is_refused_when_sent(
    alerting, resolver, servers, django_capture_on_commit_callbacks
):
    servers.append(internal := Server())
    url = f"http://hooks.test:{internal.port}/crowd"
    resolver.answers["hooks.test"] = [PUBLIC, "127.0.0.1"]  # public for the save's check, loopback ever after
    endpoint = Endpoint(name="rebinding", kind="webhook", url=url)
    endpoint.full_clean()
    endpoint.save()
    notification = raise_alert(alerting, endpoint, django_capture_on_commit_callbacks)
    assert internal.requests == []
    assert notification.last_error.startswith(
        "RefusedDestination: notifications may not go to hooks.test (127.0.0.1): the address is loopback"
    )


def test_the_connection_goes_to_the_address_checked(
    alerting, settings, resolver, servers, django_capture_on_commit_callbacks
):
    """The name is resolved once, checked, and connected to there: a second resolution (by an HTTP library that
    resolves for itself after the check) would reach the loopback server that is not allowed."""
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    servers.append(allowed := Server("127.0.0.2"))
    servers.append(forbidden := Server("127.0.0.1", allowed.port))
    resolver.answers["hooks.test"] = ["127.0.0.2", "127.0.0.1"]
    endpoint = unchecked_endpoint(f"http://hooks.test:{allowed.port}/crowd?site=central")
    notification = raise_alert(alerting, endpoint, django_capture_on_commit_callbacks)
    assert notification.status == "delivered", notification.last_error
    assert forbidden.requests == [] and resolver.asked == ["hooks.test"]
    [headers] = allowed.requests
    assert headers["Host"] == f"hooks.test:{allowed.port}" and headers["X-CrowdScope-Event"] == "raise"


def certificate_authority(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA (its certificate file) and a certificate and key for `name` it signed."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CrowdScope test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(*[False] * 5, True, True, False, False), critical=True)  # cert and CRL signing
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_https_goes_to_the_checked_address_with_the_name_for_sni_and_the_certificate(
    alerting, settings, resolver, servers, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ca, certificate, key = certificate_authority(tmp_path, "hooks.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    servers.append(receiver := Server())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, context: names.append(name)
    receiver.http.socket = context.wrap_socket(receiver.http.socket, server_side=True)
    resolver.answers["hooks.test"] = ["127.0.0.1"]
    endpoint = unchecked_endpoint(f"https://hooks.test:{receiver.port}/crowd")
    notification = raise_alert(alerting, endpoint, django_capture_on_commit_callbacks)
    assert notification.status == "delivered", notification.last_error
    assert names == ["hooks.test"] and receiver.requests[0]["Host"] == f"hooks.test:{receiver.port}"

    resolver.answers["elsewhere.test"] = ["127.0.0.1"]  # the same server under a name its certificate does not hold
    other = unchecked_endpoint(f"https://elsewhere.test:{receiver.port}/crowd")
    platform = Camera.objects.create(site=alerting.site, name="Platform", alert_threshold=50)
    refused = raise_alert(platform, other, django_capture_on_commit_callbacks)
    assert refused.last_error == "SSLError: hostname 'elsewhere.test' doesn't match 'hooks.test'"
    assert len(receiver.requests) == 1
