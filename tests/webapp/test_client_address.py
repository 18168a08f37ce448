"""client_address: the client's address behind CROWDSCOPE_TRUSTED_PROXIES proxies, never what the client wrote."""

import pytest
from django.test import RequestFactory

from tests.webapp.test_settings import SECRET_KEY, manage
from webapp.accounts.addresses import client_address


def _address(settings, proxies: int, remote: str, forwarded: str | None = None) -> str:
    settings.CROWDSCOPE_TRUSTED_PROXIES = proxies
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **headers))


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "client"),
    [
        (0, "198.51.100.7", None, "198.51.100.7"),
        (0, "198.51.100.7", "127.0.0.1", "198.51.100.7"),  # no proxy trusted: the header is the client's own
        (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.2", "127.0.0.1, 203.0.113.9", "203.0.113.9"),  # the forged entry is to the left of the proxy's
        (1, "10.0.0.2", " 127.0.0.1 ,203.0.113.9 ", "203.0.113.9"),
        (2, "10.0.0.2", "127.0.0.1, 203.0.113.9, 10.0.0.3", "203.0.113.9"),  # a CDN, then the TLS proxy
        (2, "10.0.0.2", "203.0.113.9", "10.0.0.2"),  # fewer entries than proxies: it did not come through them all
        (1, "10.0.0.2", "", "10.0.0.2"),
        (1, "10.0.0.2", "not-an-address", "10.0.0.2"),
        (1, "10.0.0.2", "2001:DB8::0:1", "2001:db8::1"),  # as ipaddress writes it
        (1, "::1", None, "::1"),
    ],
)
def test_the_client_is_the_nth_entry_from_the_right(settings, proxies, remote, forwarded, client):
    assert _address(settings, proxies, remote, forwarded) == client


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CROWDSCOPE_TRUSTED_PROXIES", "-1", "CROWDSCOPE_TRUSTED_PROXIES must be 0 or more"),
        ("CROWDSCOPE_TRUSTED_PROXIES", "one", "CROWDSCOPE_TRUSTED_PROXIES: invalid literal for int()"),
        ("CROWDSCOPE_METRICS_TOKEN", "short", "CROWDSCOPE_METRICS_TOKEN must be at least 32 characters"),
    ],
)
def test_a_malformed_proxy_count_or_metrics_token_is_refused(variable, value, message):
    result = manage("check", DJANGO_SECRET_KEY=SECRET_KEY, **{variable: value})
    assert result.returncode != 0
    assert message in result.stderr
