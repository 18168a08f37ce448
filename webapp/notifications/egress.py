"""Where notifications may connect: webhook and MQTT hosts must resolve to public addresses only, so that an endpoint
cannot make the workers reach the cloud's metadata service, the database, Redis or anything else on the private side
of the network (server-side request forgery).

A host is checked when its endpoint is saved (`Endpoint.clean`) and again at every connection; the connection then
goes to an address that was just checked (pinned), never to a second resolution of the name, so a name that resolves
to a public address for the check and to a private one a moment later (DNS rebinding) reaches nothing private.
Operators whose receivers are private on purpose name their networks in CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS.

Webhooks are sent with urllib3 on a connection to the pinned address that carries the URL's host name in the Host
header and, over https, as TLS SNI and the name the certificate must match. Redirects are not followed (a redirect
could lead anywhere) and no answer's body is read: what a receiver answers never reaches the delivery log.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

import requests.certs
import urllib3
from django.conf import settings
from urllib3.exceptions import ConnectTimeoutError, ProtocolError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64's well-known prefix (RFC 6052): 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class RefusedDestination(ValueError):
    """A host that resolves to an address notifications may not reach; the message says which and why."""


class UnresolvedHost(OSError):
    """A host name that does not resolve (now: DNS may answer later)."""


def _ipv4_inside(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to (IPv4-mapped, 6to4, NAT64, Teredo's client), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _why_refused(address: Address) -> str | None:
    """The first reason `address` itself is not a public one (the most telling first), or None."""
    for reason, refused in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),  # shared space 100.64.0.0/10 (a cloud's metadata, too)
    ):
        if refused:
            return reason
    return None


def refusal(address: Address) -> str | None:
    """Why notifications may not reach `address` (loopback, link-local, unspecified, multicast, private, reserved, not
    globally routable; for an IPv6 address that carries an IPv4 one, that one's reason first, "loopback (127.0.0.1)"),
    or None when they may: a public address, or one inside CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS."""
    inside = _ipv4_inside(address)
    allowed = [ipaddress.ip_network(network, strict=False) for network in settings.CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS]
    if any(candidate in network for network in allowed for candidate in (address, inside) if candidate is not None):
        return None
    if inside is not None and (inside_reason := _why_refused(inside)) is not None:
        return f"{inside_reason} ({inside})"
    return _why_refused(address)


def checked_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, once each has been checked (`refusal`). Raises
    RefusedDestination when any is refused (one private address among public ones is enough to refuse: which of them
    a connection uses is not ours to choose), UnresolvedHost when the name does not resolve."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnresolvedHost(f"{host} does not resolve: {error}") from error
    addresses = list(dict.fromkeys(entry[4][0] for entry in found))
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))  # an IPv6 scope (%eth0) is no part of it
        if reason is not None:
            shown = host if host == text else f"{host} ({text})"
            raise RefusedDestination(
                f"notifications may not go to {shown}: the address is {reason} "
                "(CROWDSCOPE_NOTIFY_ALLOWED_NETWORKS names the private networks they may reach)"
            )
    return addresses


def _ca_bundle() -> str:
    """The certificates a webhook's https certificate must chain to: requests' (certifi), or REQUESTS_CA_BUNDLE's file
    as requests reads it, for receivers under a private authority."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or requests.certs.where()


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST `body` to the http(s) `url` through a checked address of its host (the next one while one cannot be
    connected to) and return the answer's status code; a redirect is returned, not followed, and the answer's body
    is not read. Raises RefusedDestination, UnresolvedHost, or urllib3's error for a failed connection."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The URL's host and port as written (IPv6 in brackets), without any user information.
    headers = {**headers, "Host": parts.netloc.rpartition("@")[2]}

    def post_to(address: str) -> int:
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        if https:
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                timeout=timeout,
                retries=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=_ca_bundle(),
                server_hostname=host,
                assert_hostname=host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
        try:
            answer = pool.urlopen(
                "POST", target, body=body, headers=headers, redirect=False, retries=False, preload_content=False
            )
            answer.close()  # unread: the body is the receiver's business, never the delivery log's
            return answer.status
        except ProtocolError as error:
            # http.client's errors quote what the server sent (a status line that is not HTTP): keep their kind only.
            cause = error.args[-1]
            raise ConnectionError(f"no HTTP answer from {host}: {type(cause).__name__}") from None
        finally:
            pool.close()

    *others, last = checked_addresses(host, port)
    for address in others:
        try:
            return post_to(address)
        except ConnectTimeoutError:  # NewConnectionError too: the host's next address
            continue
    return post_to(last)
