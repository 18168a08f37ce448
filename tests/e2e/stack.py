"""A running stack for end-to-end tests: its own database (PostgreSQL or SQLite), a Redis database, gunicorn and a
real Celery worker process, all started as separate processes the way an operator runs them. Its media storage is the
run's (tests/settings.py): MEDIA_ROOT in the stack's folder, or under CROWDSCOPE_TEST_STORAGE=s3 a folder of its own
in the session's bucket."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psycopg
import redis
import requests

from tests import REPO
from tests.loopback import S3Server, free_port

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"
# Redis databases 10 and up are the tests'; each stack flushes its own.
REDIS_DATABASES = {"postgresql": 10, "sqlite": 11, "edge": 12, "adaptation": 13, "two-hosts": 14, "full-disk": 15}
QUEUES = "count.csrnet-lite,count.csrnet,default,reports"


@dataclass
class Stack:
    kind: str
    database_url: str
    environment: dict[str, str]
    folder: Path
    url: str = ""
    token: str = ""
    other_token: str = ""
    cameras: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.environment, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start_web(self) -> None:
        """Start gunicorn; again after `stop("web")`, on the same port, as a restarted server comes back."""
        port = int(self.url.rsplit(":", 1)[1]) if self.url else free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.processes["web"] = self._spawn(
            "web", [sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/accounts/login/", timeout=10).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still importing torch
                time.sleep(0.3)
        raise AssertionError(f"gunicorn did not answer; see {self.folder / 'web.log'}")

    def start_worker(self, name: str = "worker", queues: str = QUEUES, **environment: str) -> subprocess.Popen:
        """A worker process named `name` (its log: `name.log`), `environment` added to the stack's (a host of its
        own: its own MEDIA_ROOT, weights cache)."""
        command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queues]
        command += ["-c", "1", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"]
        command += ["--loglevel", "INFO"]  # as compose runs them: what each task did is in its worker's log
        # Its own process group, so that killing it takes the pool's child process too (a host dying).
        self.processes[name] = self._spawn(name, command, environment, start_new_session=True)
        return self.processes[name]

    def _spawn(
        self, name: str, command: list[str], environment: dict[str, str] | None = None, **options
    ) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("ab")
        env = self.environment | (environment or {})
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log, **options)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill_worker_host(self, name: str = "worker") -> None:
        """SIGKILL a worker and its pool children at once, as when its host loses power."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def query(self, sql: str) -> list[tuple]:
        """Read the stack's database directly, as the operator's DBA would, bypassing the API under test."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.database_url.removeprefix("sqlite:///")) as connection:
                return connection.execute(sql).fetchall()
        with psycopg.connect(self.database_url) as connection:
            return connection.execute(sql).fetchall()

    def stored_files(self) -> list[Path] | list[PurePosixPath]:
        """Every media file: the paths under MEDIA_ROOT, or the keys in the stack's folder of the bucket (relative
        to it, so `.name`, `.suffix` and `.parts` read the same)."""
        if self.environment.get("CROWDSCOPE_STORAGE") != "s3":
            media = Path(self.environment["MEDIA_ROOT"])
            return sorted(path for path in media.rglob("*") if path.is_file())
        prefix = self.environment["CROWDSCOPE_S3_PREFIX"]
        bucket = S3Server(self.environment["CROWDSCOPE_S3_ENDPOINT_URL"], self.environment["CROWDSCOPE_S3_BUCKET"])
        return [PurePosixPath(key).relative_to(prefix) for key in bucket.keys(prefix)]

    def queued_messages(self) -> int:
        client = redis.Redis.from_url(self.environment["REDIS_URL"])
        return sum(client.llen(queue) for queue in QUEUES.split(","))

    def upload(self, camera: int, image: bytes | Path, token: str | None = None, **extra) -> requests.Response:
        data = image.read_bytes() if isinstance(image, Path) else image
        headers = {"Authorization": f"Token {token or self.token}"} | extra.pop("headers", {})
        return requests.post(
            f"{self.url}/api/v1/frames/",
            data={"camera": camera, **extra},
            files={"image": ("frame.jpg", data)},
            headers=headers,
            timeout=60,
        )

    def get(self, path_or_url: str, token: str | None = None, **params) -> requests.Response:
        url = path_or_url if path_or_url.startswith("http") else f"{self.url}{path_or_url}"
        return requests.get(url, headers={"Authorization": f"Token {token or self.token}"}, params=params, timeout=30)

    def wait_for(self, frame_id: int, statuses: set[str], timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"/api/v1/frames/{frame_id}/").json()
            if body["status"] in statuses:
                return body
            time.sleep(0.1)
        raise AssertionError(f"frame {frame_id} still {body['status']} after {timeout} s; see {self.folder}/*.log")


SEED = """
from webapp.cameras.models import Camera, Gateway, Site, Zone
site = Site.objects.create(name="E2E")
main = Camera.objects.create(site=site, name="Main")
Zone.objects.create(camera=main, name="Left", polygon=[[0, 0], [512, 0], [512, 768], [0, 768]])
Zone.objects.create(camera=main, name="Right", polygon=[[512, 0], [1024, 0], [1024, 768], [512, 768]])
other = Camera.objects.create(site=site, name="Other")
tokens = []
for name, camera in (("gateway", main), ("other-gateway", other)):
    gateway = Gateway(name=name)
    tokens.append(gateway.issue_secret())
    gateway.save()
    gateway.cameras.set([camera])
print(main.pk, other.pk, *tokens)
"""


def _create_database(kind: str, folder: Path, admin_url: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'e2e.sqlite3'}", None
    name = f"crowdscope_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop_database(name: str, admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def running_stack(
    kind: str,
    folder: Path,
    redis_database: int,
    redis_server: str = REDIS_URL,
    postgres_admin_url: str = POSTGRES_ADMIN_URL,
    **settings: str,
) -> Iterator[Stack]:
    """gunicorn and a worker on a database of their own (on `postgres_admin_url`'s server, or SQLite) and a Redis
    database of `redis_server`; `settings` add to their environment."""
    database_url, postgres_name = _create_database(kind, folder, postgres_admin_url)
    redis_url = f"{redis_server}/{redis_database}"
    redis.Redis.from_url(redis_url).flushdb()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MEDIA_ROOT": str(folder / "media"),
        "STATIC_ROOT": str(folder / "static"),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "e2e-secret",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Production settings but plain HTTP on loopback, as a closed network without TLS runs them.
        "CROWDSCOPE_SSL_REDIRECT": "false",
        "CROWDSCOPE_SECURE_COOKIES": "false",
        "CROWDSCOPE_HSTS_SECONDS": "0",
        "COUNTING_THREADS": "1",
        # A worker host that vanishes leaves its task unacknowledged; Redis hands it out again after this long.
        "CELERY_VISIBILITY_TIMEOUT": "20",
        "LOG_LEVEL": "INFO",
        # The stack's own folder of the bucket, when the run's storage is one (an empty bucket, as its database is).
        "CROWDSCOPE_S3_PREFIX": f"e2e/{folder.name}-{uuid.uuid4().hex[:8]}",
        **settings,
    }
    environment.pop("CROWDSCOPE_TASKS_IN_PROCESS", None)
    stack = Stack(kind, database_url, environment, folder)
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("collectstatic", "--noinput")
        main, other, stack.token, stack.other_token = stack.manage("shell", "-c", SEED).split()[-4:]
        stack.cameras = {"main": int(main), "other": int(other)}
        stack.start_web()
        stack.start_worker()
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        if postgres_name:
            _drop_database(postgres_name, postgres_admin_url)
