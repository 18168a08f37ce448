"""Throughput as deployed, on this machine: accepted uploads per second (a load generator against gunicorn on
loopback, PostgreSQL, Redis, counting off) with the media on the local disk and in an S3 bucket (moto's server on
loopback) side by side, then frames per second through one counting worker end to end (from its queue to the
result, heatmap, density map and zone counts stored).

    python scripts/throughput.py [--seconds 20] [--clients 16] [--web-workers 4] [--frames 40] [--storages local,s3]

Uses the PostgreSQL on 127.0.0.1:5432 (a throw-away database) and Redis databases 13 and 14 on 127.0.0.1:6379, as
`make test` has them. The load generator runs on the same cores as the server: the figure is what one machine does
with both, a floor for a server whose clients are elsewhere.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import requests
from loopback_s3 import loopback_bucket
from web_memory import REPO, free_port, wait_for_status

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_BROKER, REDIS_CACHE = "redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379/14"
STORAGE_NAMES = {"local": "the local disk", "s3": "an S3 bucket (moto on loopback)"}
GATEWAYS = 8  # each with a camera and a token: the per-token rate limit is part of what is measured
FRAME = REPO.parent / "shared/data/shanghaitech/part_B/test/images/IMG_1.jpg"  # 1024x768, 150 KB
SEED = f"""
from webapp.cameras.models import Camera, Gateway, Site
site = Site.objects.create(name="Bench")
for index in range({GATEWAYS}):
    camera = Camera.objects.create(site=site, name=f"Bench {{index}}")
    gateway = Gateway(name=f"bench-{{index}}")
    token = gateway.issue_secret()
    gateway.save()
    gateway.cameras.set([camera])
    print("camera", camera.pk, token)
"""


def manage(environment: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=environment, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stderr}")
    return result.stdout


def upload_load(url: str, cameras: list[tuple[int, str]], frame: bytes, clients: int, seconds: float) -> dict:
    """`clients` threads upload `frame` for `seconds`, each for one gateway in turn; the answers by status."""
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        camera, token = cameras[index % len(cameras)]
        while time.monotonic() < deadline:
            response = session.post(
                f"{url}/api/v1/frames/",
                data={"camera": camera},
                files={"image": ("frame.jpg", frame, "image/jpeg")},
                headers={"Authorization": f"Token {token}"},
                timeout=60,
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {"statuses": statuses, "seconds": time.monotonic() - started}


def worker_rate(environment: dict[str, str], database_url: str, folder: Path, frames: int) -> tuple[float, float]:
    """Start one counting worker on the waiting frames; frames per second from its first result to its `frames`-th
    (the model's load excluded), and the mean inference seconds of those frames."""
    log = (folder / "worker.log").open("ab")
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "count.csrnet-lite"]
    command += ["--concurrency", "1", "--without-gossip", "--without-mingle", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    worker = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=log)
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                rows = connection.execute(
                    "SELECT created_at, inference_ms FROM ingest_result ORDER BY created_at LIMIT %s", [frames + 1]
                ).fetchall()
                if len(rows) > frames:
                    span = (rows[-1][0] - rows[0][0]).total_seconds()
                    return frames / span, sum(ms for _, ms in rows[1:]) / frames / 1000
                time.sleep(0.5)
        raise RuntimeError(f"the worker did not count {frames + 1} frames in 600 s; see {folder / 'worker.log'}")
    finally:
        worker.terminate()
        worker.wait(timeout=60)


@dataclass
class BenchStack:
    """A throw-away deployment on this machine: its database, gunicorn on loopback, 8 gateways with a camera each."""

    url: str
    cameras: list[tuple[int, str]]  # (camera id, its gateway's token)
    environment: dict[str, str]
    database_url: str
    folder: Path
    server: subprocess.Popen | None

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(timeout=60)
            self.server = None


@contextmanager
def bench_stack(web_workers: int, storage: dict[str, str]) -> Iterator[BenchStack]:
    """Migrate a new PostgreSQL database, seed the gateways, start gunicorn with the media storage's variables
    `storage` (none: the local disk); drop it all on the way out."""
    name = f"crowdscope_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    for url in (REDIS_BROKER, REDIS_CACHE):
        redis.Redis.from_url(url).flushdb()
    stack = None
    with tempfile.TemporaryDirectory(prefix="crowdscope-bench-") as folder:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "throughput-bench",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "CROWDSCOPE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_BROKER,
            "CROWDSCOPE_CACHE_URL": REDIS_CACHE,
            "MEDIA_ROOT": f"{folder}/media",
            "STATIC_ROOT": f"{folder}/static",
            "COUNTING_THREADS": str(os.cpu_count() or 1),
            "LOG_LEVEL": "WARNING",
            **storage,
        }
        environment.pop("CROWDSCOPE_TASKS_IN_PROCESS", None)
        try:
            manage(environment, "migrate", "--noinput")
            seeded = manage(environment, "shell", "-c", SEED).splitlines()
            cameras = [(int(line.split()[1]), line.split()[2]) for line in seeded if line.startswith("camera ")]
            port = free_port()
            command = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}"]
            command += ["--workers", str(web_workers), "--no-control-socket"]
            log = (Path(folder) / "web.log").open("ab")
            server = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=log)
            stack = BenchStack(f"http://127.0.0.1:{port}", cameras, environment, database_url, Path(folder), server)
            if wait_for_status(f"{stack.url}/healthz", server) != 200:
                raise RuntimeError("the server is not healthy")
            yield stack
        finally:
            if stack is not None:
                stack.stop_server()
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the uploads go on")
    parser.add_argument("--clients", type=int, default=16, help="concurrent uploading threads")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--frames", type=int, default=40, help="frames the counting worker is timed on")
    parser.add_argument(
        "--storages",
        default="local,s3",
        help="media storages to measure ingest on, in order; the last one's frames are counted",
    )
    args = parser.parse_args()

    storages = args.storages.split(",")
    try:
        rates, counting = {}, ""
        for storage in storages:
            with ExitStack() as context:
                bucket = context.enter_context(loopback_bucket()) if storage == "s3" else None
                stack = context.enter_context(bench_stack(args.web_workers, bucket.environment if bucket else {}))
                server_cpu = bucket.cpu_seconds() if bucket else 0.0
                load = upload_load(stack.url, stack.cameras, FRAME.read_bytes(), args.clients, args.seconds)
                accepted = load["statuses"].get(202, 0)
                rates[storage] = accepted / load["seconds"]
                print(
                    f"ingest, media on {STORAGE_NAMES[storage]}: {rates[storage]:.1f} accepted uploads/s ({accepted} "
                    f"in {load['seconds']:.1f} s, {args.clients} clients, {GATEWAYS} gateways, {args.web_workers} "
                    f"gunicorn workers, counting off; answers {dict(sorted(load['statuses'].items()))})",
                    flush=True,
                )
                if bucket:
                    share = (bucket.cpu_seconds() - server_cpu) / (load["seconds"] * (os.cpu_count() or 1))
                    print(f"  the S3 server itself used {share:.0%} of this machine's CPU meanwhile", flush=True)
                if storage == storages[-1]:  # its uploads are counted, by one worker
                    stack.stop_server()
                    rate, inference = worker_rate(stack.environment, stack.database_url, stack.folder, args.frames)
                    counting = (
                        f"counting, media on {STORAGE_NAMES[storage]}: {rate:.2f} frames/s end to end through one "
                        f"worker (csrnet-lite, 1024x768, {stack.environment['COUNTING_THREADS']} threads); inference "
                        f"{inference:.3f} s a frame, the rest {1 / rate - inference:.3f} s (decoding, heatmap, files, "
                        "database)"
                    )
        if {"local", "s3"} <= rates.keys():
            print(f"ingest, bucket / local disk: {rates['s3'] / rates['local']:.2f}")
        print(counting)
    except RuntimeError as error:
        print(f"throughput: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
