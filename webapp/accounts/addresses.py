"""The address of the client a request comes from, as far as this deployment can know it.

Behind proxies that each append the address they were reached from to X-Forwarded-For, REMOTE_ADDR is the nearest
proxy and the header's right end holds what the proxies wrote; anything to the left of that was sent by the client and
may be forged. CROWDSCOPE_TRUSTED_PROXIES says how many proxies stand in front of this process: with N, the client is
the Nth address from the right of X-Forwarded-For; with 0 (the default) the header is ignored and REMOTE_ADDR is the
client. Sign-in limits (django-axes), `/metrics`, `/readyz` and the audit log all ask `client_address`.

Written here rather than taken from django-ipware: the rule is a count from the right of one header, which is all a
deployment with known proxies needs; ipware's defaults trust the header's left end, which the client writes.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _normalised(text: str) -> str | None:
    """The address written in `text` in its canonical form, or None when `text` is no IP address."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The client's IP address: the CROWDSCOPE_TRUSTED_PROXIES-th entry from the right of X-Forwarded-For, or
    REMOTE_ADDR when no proxy is trusted, when the header holds fewer entries than there are trusted proxies (the
    request did not come through all of them) or when that entry is no IP address. Never raises; an empty string
    only when the server gave no REMOTE_ADDR either."""
    remote = request.META.get("REMOTE_ADDR", "")
    remote = _normalised(remote) or remote
    proxies = settings.CROWDSCOPE_TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    # Several X-Forwarded-For lines arrive joined by commas (WSGI servers join repeated headers), in order.
    forwarded = [entry for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(forwarded) < proxies:
        return remote
    return _normalised(forwarded[-proxies]) or remote
