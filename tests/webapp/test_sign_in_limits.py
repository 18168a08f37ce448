"""Sign-in attempts are limited per user name and address (django-axes); passwords must pass the validators."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from tests.webapp.conftest import user_with_role
from webapp.accounts.roles import Role

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
PASSWORD = "a-long-enough-passphrase"


def _sign_in(client, username: str, password: str):
    return client.post(LOGIN_URL, {"username": username, "password": password})


def test_five_wrong_passwords_lock_that_user_name_from_that_address(client, settings, pages):
    olivia = user_with_role("olivia", Role.OPERATOR)
    olivia.set_password(PASSWORD)
    olivia.save()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "olivia", "wrong").status_code == 200  # the form again, with its error
    assert _sign_in(client, "olivia", "wrong").status_code == 429
    locked = _sign_in(client, "olivia", PASSWORD)
    assert locked.status_code == 429  # the right password too, until the cool-off ends
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_resets_the_count(client, settings, pages):
    olivia = user_with_role("olivia", Role.OPERATOR)
    olivia.set_password(PASSWORD)
    olivia.save()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "olivia", "wrong")
    assert _sign_in(client, "olivia", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "olivia", "wrong").status_code == 200
    assert _sign_in(client, "olivia", PASSWORD).status_code == 302


@pytest.mark.parametrize("password", ["short1", "password123", "1234567890123", "olivia2026"])
def test_weak_passwords_are_refused(password):
    olivia = user_with_role("olivia", Role.OPERATOR)
    with pytest.raises(ValidationError):
        validate_password(password, olivia)
    validate_password(PASSWORD, olivia)
