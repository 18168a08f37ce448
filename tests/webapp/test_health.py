"""/healthz and /readyz against the real database, broker (Redis) and media storage; each failure is named."""

import pytest

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_broker_and_media(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert {name: check["state"] for name, check in checks.items()} == {"database": "ok", "broker": "ok", "media": "ok"}


def test_readyz_is_503_naming_an_unreachable_broker_and_unwritable_media(client, settings, tmp_path, local_disk):
    """The local disk: an unreachable bucket is tests/webapp/test_object_storage.py's."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    (tmp_path / "a-file").write_text("")
    settings.MEDIA_ROOT = str(tmp_path / "a-file" / "media")  # under a file: nothing can be written there
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["state"] == "ok"
    assert body["checks"]["broker"]["state"].startswith("failed:")
    assert body["checks"]["media"]["state"].startswith("failed:")


def test_readyz_skips_the_broker_when_tasks_run_in_process(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"]["state"].startswith("not used")


def test_every_answer_says_how_long_the_server_took(client):
    timing = client.get("/healthz")["Server-Timing"]
    name, duration = timing.split(";dur=")
    assert name == "app" and float(duration) >= 0.0
    assert client.get("/no-such-page/")["Server-Timing"].startswith("app;dur=")
