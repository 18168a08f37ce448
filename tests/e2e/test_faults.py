"""Faults under load, end to end: a gateway keeps uploading while the broker, the database and a worker go down and
come back. Every frame the server accepted must end counted, exactly once.

The stack runs on a Redis and a PostgreSQL of its own (started here on free ports, in temporary folders), never on
the machine's shared ones, which these tests stop and restart.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from tests.e2e.stack import Stack, running_stack
from tests.loopback import free_port

FRAMES = 60
POSTGRES_USER = "postgres"


class OwnRedis:
    """redis-server on a free port, appending to a file as compose's Redis does, so a restart keeps the queues."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command += ["--appendonly", "yes", "--save", ""]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"redis-server did not start; see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder (initdb, pg_ctl) on a free port, trusting local connections."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder / "pgdata", free_port()
        # PostgreSQL refuses to run as root: as root, run it as the postgres user, in a folder that user owns.
        self.as_user = ["runuser", "-u", POSTGRES_USER, "--"] if os.geteuid() == 0 else []

    @property
    def admin_url(self) -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, text=True)

    def init(self) -> None:
        self.folder.mkdir()
        if self.as_user:
            shutil.chown(self.folder, POSTGRES_USER, POSTGRES_USER)
        self._run("initdb", "-D", str(self.folder), "-U", POSTGRES_USER, "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.folder), "-o", options, "-l", str(self.folder / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder), "-m", "fast", "-w", "stop")


def _tools_missing() -> list[str]:
    return [tool for tool in ("redis-server", "initdb", "pg_ctl") if shutil.which(tool) is None]


@pytest.fixture(scope="module")
def own_services() -> Iterator[tuple[OwnRedis, OwnPostgres]]:
    if missing := _tools_missing():
        pytest.fail(f"{', '.join(missing)} not installed: `make test` installs them (scripts/ensure-services.sh)")
    # Not under pytest's folders, which only root may enter: the postgres user must reach its data folder.
    with tempfile.TemporaryDirectory(prefix="crowdscope-services-") as folder:
        os.chmod(folder, 0o755)
        broker, database = OwnRedis(Path(folder)), OwnPostgres(Path(folder))
        database.init()
        broker.start()
        database.start()
        try:
            yield broker, database
        finally:
            broker.stop()
            database.stop()


@pytest.fixture(scope="module")
def fault_stack(own_services, tmp_path_factory) -> Iterator[Stack]:
    broker, database = own_services
    settings = {
        # The beat's sweep, run by the test: lost tasks are re-sent after 20 s, not an hour.
        "CROWDSCOPE_REQUEUE_AFTER_SECONDS": "20",
        "CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS": "20",
        "CELERY_VISIBILITY_TIMEOUT": "3600",  # as in production: recovery must not wait for it
        "CROWDSCOPE_HEATMAP_MAX_SIDE": "256",
    }
    folder = tmp_path_factory.mktemp("fault-stack")
    with running_stack("postgresql", folder, 0, broker.url, database.admin_url, **settings) as stack:
        yield stack


def small_frame(index: int) -> bytes:
    """A 320x240 JPEG, different for each index (a gradient shifted by it)."""
    image = Image.linear_gradient("L").resize((320, 240)).point(lambda value: (value + 4 * index) % 256).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class Gateway(threading.Thread):
    """Uploads FRAMES frames, each until the server accepts it, with one Idempotency-Key per frame, as the agent
    does: a frame refused or unanswered during an outage is sent again, never twice accepted."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.accepted: dict[int, int] = {}  # frame index: frame id
        self.refusals = 0

    def run(self) -> None:
        for index in range(FRAMES):
            while index not in self.accepted:
                try:
                    response = self.stack.upload(
                        self.stack.cameras["main"],
                        small_frame(index),
                        headers={"Idempotency-Key": f"fault-{index}"},
                        captured_at=f"2026-12-01T10:{index // 60:02d}:{index % 60:02d}+00:00",
                    )
                    if response.status_code == 202:
                        self.accepted[index] = response.json()["id"]
                        continue
                except requests.RequestException:
                    pass
                self.refusals += 1
                time.sleep(0.5)
            time.sleep(0.1)

    def wait_for(self, accepted: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.accepted) >= accepted, f"only {len(self.accepted)} frames accepted in {timeout} s"


def _kill_worker_mid_task(stack: Stack, tries: int = 5) -> None:
    """SIGKILL the worker and its pool at once while a frame is processing (a host losing power), then start
    another; again with the new one while no frame was left processing by the kill (a small frame takes
    milliseconds, so on a busy machine a kill can land just after it)."""
    worker = "worker"
    for attempt in range(1, tries + 1):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stack.query("SELECT 1 FROM ingest_frame WHERE status = 'processing'"):
            time.sleep(0.02)
        stack.kill_worker_host(worker)
        held = stack.query("SELECT COUNT(*) FROM ingest_frame WHERE status = 'processing'")[0][0]
        worker = f"replacement-{attempt}"
        stack.start_worker(worker)
        if held:
            return
    raise AssertionError(f"no kill in {tries} landed while a frame was processing; see {stack.folder}/*.log")


def _sweep_until_counted(stack: Stack, frame_ids: list[int], timeout: float = 420) -> tuple[dict[str, int], int]:
    """Run the beat's sweep (`requeue_stale_frames`) every 15 s until every frame is done or failed; the statuses
    and how many frames the sweeps sent again."""
    deadline = time.monotonic() + timeout
    sweep = "from workers.tasks import requeue_stale_frames; print(requeue_stale_frames())"
    ids = ",".join(map(str, frame_ids))
    sent_again = 0
    while time.monotonic() < deadline:
        statuses = dict(stack.query(f"SELECT status, COUNT(*) FROM ingest_frame WHERE id IN ({ids}) GROUP BY status"))
        if set(statuses) <= {"done", "failed"}:
            return statuses, sent_again
        sent_again += int(stack.manage("shell", "-c", sweep).split()[-1])
        time.sleep(15)
    raise AssertionError(f"frames still waiting after {timeout} s: {statuses}; see {stack.folder}/*.log")


def test_every_accepted_frame_is_counted_once_through_broker_database_and_worker_outages(fault_stack, own_services):
    broker, database = own_services
    gateway = Gateway(fault_stack)
    gateway.start()

    gateway.wait_for(10)
    _kill_worker_mid_task(fault_stack)

    gateway.wait_for(25)
    broker.stop()  # uploads go on: stored, their tasks sent by the sweep once the broker is back
    time.sleep(3)
    broker.start()

    gateway.wait_for(40)
    database.stop()  # uploads are refused (the gateway sends them again); the worker's writes retry
    time.sleep(3)
    database.start()

    gateway.join(timeout=300)
    assert not gateway.is_alive() and len(gateway.accepted) == FRAMES
    frame_ids = sorted(gateway.accepted.values())
    assert len(set(frame_ids)) == FRAMES, "a frame was accepted twice"

    started = time.monotonic()
    statuses, sent_again = _sweep_until_counted(fault_stack, frame_ids)
    assert statuses == {"done": FRAMES}
    ids = ",".join(map(str, frame_ids))
    results = fault_stack.query(f"SELECT frame_id, COUNT(*) FROM ingest_result WHERE frame_id IN ({ids}) GROUP BY 1")
    assert sorted(frame for frame, count in results if count == 1) == frame_ids
    assert fault_stack.query("SELECT COUNT(*) FROM ingest_frame") == [(FRAMES,)]
    # The frame the killed worker held was counted again by the sweep, long before the broker's visibility timeout.
    interrupted = fault_stack.query("SELECT COUNT(*) FROM ingest_frame WHERE interruptions > 0")[0][0]
    assert interrupted >= 1 and sent_again >= interrupted
    print(
        f"faults: {FRAMES} accepted ({gateway.refusals} refusals sent again by the gateway), {len(results)} counted "
        f"once; {sent_again} sent again by the sweep, {interrupted} interrupted; all done "
        f"{time.monotonic() - started:.0f} s after the last upload"
    )
