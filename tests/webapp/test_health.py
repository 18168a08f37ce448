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


def _unready(settings, tmp_path) -> None:
    """An unreachable broker and media storage under a file: two checks fail, with errors naming hosts and paths."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    (tmp_path / "a-file").write_text("")
    settings.MEDIA_ROOT = str(tmp_path / "a-file" / "media")


@pytest.mark.parametrize(
    "request_from",
    [
        {"REMOTE_ADDR": "198.51.100.7"},  # another host, directly
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"},  # another host, through a local proxy
    ],
)
def test_readyz_names_what_failed_but_not_why_to_other_hosts(client, settings, tmp_path, local_disk, request_from):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 1
    _unready(settings, tmp_path)
    response = client.get("/readyz", **request_from)
    assert response.status_code == 503
    states = {name: check["state"] for name, check in response.json()["checks"].items()}
    assert states == {"database": "ok", "broker": "failed", "media": "failed"}
    assert "a-file" not in response.content.decode() and "Error" not in response.content.decode()


def test_readyz_tells_why_to_this_host_and_the_log(client, settings, tmp_path, local_disk, caplog):
    _unready(settings, tmp_path)
    response = client.get("/readyz", REMOTE_ADDR="::1")
    assert (
        response.json()["checks"]["media"]["state"]
        == f"failed: NotADirectoryError: {tmp_path / 'a-file'} is not a folder"
    )
    assert "readyz: broker failed: OperationalError" in caplog.text


def test_readyz_writes_nothing_to_media_storage(client, settings, local_disk):
    local_disk.mkdir(parents=True, exist_ok=True)
    before = local_disk.stat().st_mtime_ns  # a folder's time changes with every entry made or removed in it
    for _ in range(3):
        assert client.get("/readyz").status_code == 200
    assert list(local_disk.iterdir()) == []
    assert local_disk.stat().st_mtime_ns == before


def test_readyz_is_ready_before_the_media_folder_is_made_and_does_not_make_it(client, settings, tmp_path, local_disk):
    settings.MEDIA_ROOT = str(tmp_path / "not-yet" / "media")
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"]["media"]["state"] == "ok"
    assert not (tmp_path / "not-yet").exists()
