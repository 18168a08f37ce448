"""docker-compose.yml is valid for docker-compose and describes the production services with health checks."""

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

SERVICES = {"web", "worker", "beat", "redis", "postgres"}


def compose_config(**environment: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed; `make test` installs it (scripts/ensure-services.sh)")
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SECRET_KEY"} | environment
    return subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )


def test_compose_file_describes_every_service_with_health_checks_and_volumes():
    result = compose_config(DJANGO_SECRET_KEY="test-secret")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == SERVICES
    for name in ("web", "worker", "redis", "postgres"):
        assert "healthcheck" in config["services"][name], name
    assert {"media", "postgres-data", "redis-data"} <= set(config["volumes"])
    assert "-Q count.csrnet-lite" in str(config["services"]["worker"]["command"])
    web_environment = config["services"]["web"]["environment"]
    assert web_environment["DATABASE_URL"].startswith("postgres://")
    assert web_environment["REDIS_URL"] == "redis://redis:6379/0"


def test_compose_refuses_to_start_without_a_secret_key():
    result = compose_config()
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
