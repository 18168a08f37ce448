"""Sign-in attempts are limited per client address (seen through trusted proxies) and slowed per user name, so that
nobody can lock another person out by naming them; passwords must pass the validators."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import F
from django.test import Client

from tests.factories import user_with_role
from webapp.accounts.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]

LOGIN_URL = "/accounts/login/"
PASSWORD = "a-long-enough-passphrase"
PROXY = "10.0.0.2"  # the TLS proxy every client's connection arrives from


@pytest.fixture
def olivia():
    olivia = user_with_role("olivia", Role.OPERATOR)
    olivia.set_password(PASSWORD)
    olivia.save()
    return olivia


def _sign_in(client: Client, username: str, password: str):
    return client.post(LOGIN_URL, {"username": username, "password": password})


def _behind_the_proxy(address: str) -> Client:
    """A browser at `address` whose requests reach the web process through the TLS proxy."""
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=address)


def _seconds_pass(seconds: int) -> None:
    """The recorded attempts move `seconds` into the past, as if that long had gone by."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(seconds=seconds))


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_behind_a_proxy_wrong_passwords_from_one_client_do_not_lock_the_user_out_elsewhere(settings, olivia):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 1
    attacker, olivia_browser = _behind_the_proxy("198.51.100.7"), _behind_the_proxy("203.0.113.40")
    for number in range(settings.AXES_FAILURE_LIMIT):
        if number:
            _seconds_pass(settings.CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS)  # the name's wait, if any, has passed
        _sign_in(attacker, "olivia", "wrong")
    assert _sign_in(attacker, "olivia", PASSWORD).status_code == 429  # that address is refused for the cool-off
    assert not _signed_in(attacker)
    early = _sign_in(olivia_browser, "olivia", PASSWORD)
    assert early.status_code == 429 and not _signed_in(olivia_browser)
    wait = int(early["Retry-After"])  # the name's wait after five failures, 8 s from the latest: not the cool-off
    assert 4 < wait <= 8  # (less the time this slow machine took since)
    _seconds_pass(wait)
    assert _sign_in(olivia_browser, "olivia", PASSWORD).status_code == 302
    assert _signed_in(olivia_browser)


def test_failures_for_a_name_from_many_addresses_make_each_attempt_wait(settings, olivia):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 1
    for number in range(4):
        if number:
            _seconds_pass(settings.CROWDSCOPE_LOGIN_NAME_MAX_WAIT_SECONDS)
        assert _sign_in(_behind_the_proxy(f"198.51.100.{number}"), "olivia", "wrong").status_code == 200
    olivia_browser = _behind_the_proxy("203.0.113.40")
    early = _sign_in(olivia_browser, "olivia", PASSWORD)
    assert early.status_code == 429 and not _signed_in(olivia_browser)
    wait = int(early["Retry-After"])  # 2 s after the third failure, doubling with each one: 4 s from the fourth
    assert 2 < wait <= 4  # (less the time this slow machine took since)
    assert "user name" in early.content.decode()
    _seconds_pass(wait)
    assert _sign_in(olivia_browser, "olivia", PASSWORD).status_code == 302


def test_one_address_guessing_at_many_names_is_refused_for_the_cool_off(client, settings, olivia):
    for number in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, f"someone-{number}", "wrong").status_code == 200  # the form again, with its error
    refused = _sign_in(client, "someone-else", "wrong")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert _sign_in(client, "olivia", PASSWORD).status_code == 429  # the right password too, until the cool-off ends
    assert not _signed_in(client)
    elsewhere = Client(REMOTE_ADDR="192.0.2.80")
    assert _sign_in(elsewhere, "olivia", PASSWORD).status_code == 302


def test_a_forged_forwarded_for_is_ignored_without_trusted_proxies(settings, olivia):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 0
    for number in range(settings.AXES_FAILURE_LIMIT):
        forger = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")
        _sign_in(forger, f"someone-{number}", "wrong")
    assert _sign_in(forger, "olivia", PASSWORD).status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}


def test_a_success_forgives_that_names_failures_from_that_address_only(client, settings, olivia):
    for number in range(settings.AXES_FAILURE_LIMIT - 2):
        _sign_in(client, f"someone-{number}", "wrong")
    _sign_in(client, "olivia", "wrong")
    assert _sign_in(client, "olivia", PASSWORD).status_code == 302  # her own mistake is forgiven
    client.logout()
    assert _sign_in(client, "someone-else", "wrong").status_code == 200
    # The guesses at other names are not: signing in to one's own account does not clear an address.
    assert _sign_in(client, "someone-more", "wrong").status_code == 429


@pytest.mark.parametrize("password", ["short1", "password123", "1234567890123", "olivia2026"])
def test_weak_passwords_are_refused(password):
    olivia = user_with_role("olivia", Role.OPERATOR)
    with pytest.raises(ValidationError):
        validate_password(password, olivia)
    validate_password(PASSWORD, olivia)
