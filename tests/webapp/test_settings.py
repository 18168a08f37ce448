"""Settings read from the environment as an operator writes it, and production secure by default."""

import json
import os
import subprocess
import sys

import pytest

from tests import REPO

# A secret key that `check --deploy` accepts (50 characters, varied).
SECRET_KEY = "k3J9-q_Lz8vX2mN7pR4tY6wB1cF5hD0sG-aE8uI3oP9lK2jH7gV"
READ_SETTINGS = """
import json
from django.conf import settings
names = {names!r}
print(json.dumps({{name: getattr(settings, name, None) for name in names}}, default=str))
"""


def clean_environment(**variables: str) -> dict[str, str]:
    """Only what an operator sets: none of the developer's or the tests' own variables."""
    return {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "webapp.settings", **variables}


def read_settings(names: list[str], **variables: str) -> dict:
    code = READ_SETTINGS.format(names=names)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=REPO,
        env=clean_environment(**variables),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=clean_environment(**variables),
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_deploy_finds_nothing_with_only_the_secret_key_and_hosts_set():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY=SECRET_KEY, DJANGO_ALLOWED_HOSTS="example.org"
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_debug_is_off_unless_set_and_production_then_serves_https_only():
    production = read_settings(
        ["DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"],
        DJANGO_SECRET_KEY=SECRET_KEY,
    )
    assert production == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
    }
    development = read_settings(["DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"], DJANGO_DEBUG="yes")
    assert development == {"DEBUG": True, "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0}


def test_without_a_secret_key_production_refuses_to_start():
    result = manage("check")
    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY when DJANGO_DEBUG is off" in result.stderr


@pytest.mark.parametrize(("written", "read"), [("true", True), ("1", True), ("on", True), ("no", False), ("0", False)])
def test_booleans_are_read_as_operators_write_them(written, read):
    assert read_settings(["DEBUG"], DJANGO_DEBUG=written, DJANGO_SECRET_KEY=SECRET_KEY) == {"DEBUG": read}


def test_a_tls_proxy_and_its_origins_can_be_named():
    settings = read_settings(
        ["SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS", "ALLOWED_HOSTS", "COUNTING_WEIGHTS"],
        DJANGO_SECRET_KEY=SECRET_KEY,
        CROWDSCOPE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO=https",
        CSRF_TRUSTED_ORIGINS="https://crowds.example.org,https://ops.example.org",
        DJANGO_ALLOWED_HOSTS="crowds.example.org,ops.example.org",
        COUNTING_WEIGHTS="csrnet=/models/a.pt,csrnet-lite=/models/b.pt",
    )
    assert settings == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "CSRF_TRUSTED_ORIGINS": ["https://crowds.example.org", "https://ops.example.org"],
        "ALLOWED_HOSTS": ["crowds.example.org", "ops.example.org"],
        "COUNTING_WEIGHTS": {"csrnet": "/models/a.pt", "csrnet-lite": "/models/b.pt"},
    }


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EMAIL_PORT", "twenty-five", "EMAIL_PORT: invalid literal for int()"),
        ("CROWDSCOPE_PROXY_SSL_HEADER", "X-Forwarded-Proto", "must read HTTP_NAME=value"),
    ],
)
def test_a_malformed_value_is_refused_naming_its_variable(variable, value, message):
    result = manage("check", DJANGO_SECRET_KEY=SECRET_KEY, **{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_behind_the_proxy_https_passes_plain_http_is_redirected_and_probes_answer_any_host(client, pages, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    redirected = client.get("/accounts/login/")
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")
    # Probes and scrapers, over plain HTTP by the name they know the process by: answered, not redirected or refused.
    settings.ALLOWED_HOSTS = ["crowds.example.org"]
    assert client.get("/healthz", HTTP_HOST="web:8000").status_code == 200
    assert client.get("/metrics", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="web:8000").status_code == 400  # DisallowedHost
