"""The gateway agent (`python -m edge`, a separate process) against a real running server (gunicorn, a
Celery worker, PostgreSQL, Redis): frames counted on the gateway with our SkyNet-Count, visible through the API;
the server stopped, frames keep being counted and queued on disk (and the queue outlives the agent's own restart);
the server back, the queue drains with no duplicates; privacy mode sends no image bytes; full mode uploads frames
for the server's workers to count; what the server refuses waits (a configuration mistake) or is kept aside (bad
data) without holding up the rest."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests

from counting.density_files import density_npz
from counting.images import load_rgb
from counting.models import load_model
from counting.onnx_export import OnnxCounter, export_onnx
from counting.versions import weights_version
from edge.outbox import Outbox, Outgoing
from edge.uploader import DeliveryState, Uploader
from tests import REPO
from tests.e2e.stack import REDIS_DATABASES, Stack, running_stack
from tests.loopback import free_port
from webapp.demo.simulator import drop_frame


@pytest.fixture(scope="module")
def edge_services(tmp_path_factory) -> Iterator[Stack]:
    with running_stack("postgresql", tmp_path_factory.mktemp("edge-stack"), REDIS_DATABASES["edge"]) as stack:
        yield stack


@pytest.fixture
def edge_stack(edge_services) -> Iterator[Stack]:
    """The module's stack, its server brought back after a test that stopped it and failed before restarting it."""
    yield edge_services
    if "web" not in edge_services.processes:
        edge_services.start_web()


@pytest.fixture(scope="module")
def skynet_onnx(tmp_path_factory) -> Path:
    """Our trained SkyNet-Count as a gateway gets it: `python -m counting export --onnx`."""
    model, arch, weights = load_model("skynet-count")
    path = tmp_path_factory.mktemp("model") / "skynet-count.onnx"
    return export_onnx(model, path, {"arch": arch, "weights": weights_version(weights)})


@pytest.fixture(scope="module")
def test_frames(shanghaitech) -> list[Path]:
    return sorted((shanghaitech / "part_B/test/images").glob("*.jpg"))[:6]


class EdgeAgent:
    """`python -m edge` watching a camera folder, with its state folder and health port."""

    def __init__(self, folder: Path, server: str, token: str, camera: int, day: int, *options: str) -> None:
        self.day = day  # each test's frames fall on a day of their own
        self.camera_folder = folder / "camera"
        self.camera_folder.mkdir(parents=True, exist_ok=True)
        self.state_dir = folder / "state"
        self.log = folder / "agent.log"
        self.port = free_port()
        self.command = [
            sys.executable, "-m", "edge", "--server", server, "--camera", str(camera),
            "--folder", str(self.camera_folder), "--interval", "0.2", "--state-dir", str(self.state_dir),
            "--health-port", str(self.port), "--threads", "1", *options,
        ]  # fmt: skip
        self.environment = {**os.environ, "CROWDSCOPE_GATEWAY_TOKEN": token}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=REPO, env=self.environment, stdout=log, stderr=log)
        self.wait_until(lambda health: True, "the health server to answer", timeout=120)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def health(self) -> dict | None:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json()
        except requests.RequestException:
            return None

    def wait_until(self, condition: Callable[[dict], bool], what: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the agent exited; see {self.log}:\n{self.log.read_text()[-3000:]}"
            health = self.health()
            if health is not None and condition(health):
                return health
            time.sleep(0.2)
        raise AssertionError(f"waited {timeout} s for {what}; last health {self.health()}; see {self.log}")

    def drop_frame(self, source: Path, minute: int) -> datetime:
        """A frame written by the camera at 10:`minute` of the agent's day, as its file time says."""
        captured_at = datetime(2026, 11, self.day, 10, minute, tzinfo=UTC)
        drop_frame(self.camera_folder, source, captured_at)
        return captured_at


@pytest.fixture
def agents(tmp_path) -> Iterator[Callable[..., EdgeAgent]]:
    started: list[EdgeAgent] = []

    def make(server: str, token: str, camera: int, day: int, *options: str) -> EdgeAgent:
        agent = EdgeAgent(tmp_path / f"agent-{len(started)}", server, token, camera, day, *options)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


def stored_frames(stack: Stack, agent: EdgeAgent, camera: int) -> list[tuple]:
    """The frames of `camera` on the agent's day, read from the database directly."""
    return stack.query(
        "SELECT f.captured_at, f.idempotency_key, f.image, r.count, r.model_name, r.model_version, f.content_hash"
        " FROM ingest_frame f JOIN ingest_result r ON r.frame_id = f.id"
        f" WHERE f.camera_id = {camera} AND f.captured_at >= '2026-11-{agent.day:02d}T00:00:00Z'"
        f" AND f.captured_at < '2026-11-{agent.day + 1:02d}T00:00:00Z' ORDER BY f.captured_at"
    )


def test_privacy_mode_results_reach_the_server_and_survive_its_outage_without_duplicates(
    edge_stack, skynet_onnx, test_frames, agents
):
    camera = edge_stack.cameras["main"]
    agent = agents(edge_stack.url, edge_stack.token, camera, 21, "--model", str(skynet_onnx))
    agent.start()
    times = [agent.drop_frame(frame, minute) for minute, frame in enumerate(test_frames[:2])]
    agent.wait_until(lambda h: h["delivered"] == 2 and h["queue_length"] == 0, "two results delivered")

    stored = stored_frames(edge_stack, agent, camera)
    assert [row[0] for row in stored] == times
    counter = OnnxCounter(skynet_onnx)
    for row, frame in zip(stored, test_frames[:2], strict=True):
        assert row[2] == ""  # no image stored: the frame never left the gateway
        assert row[3] == pytest.approx(float(counter.density(load_rgb(frame)).sum()), abs=1e-3)
        assert row[4] == "skynet-count" and row[5] == weights_version(load_model("skynet-count")[2])
    counts = edge_stack.get(
        f"/api/v1/cameras/{camera}/counts/", **{"from": "2026-11-21T09:00:00Z", "to": "2026-11-21T11:00:00Z"}
    ).json()
    assert [point["count"] for point in counts["points"]] == pytest.approx([row[3] for row in stored], abs=0.01)
    for point in counts["points"]:  # zone counts from the gateway's map and the server's zones
        assert set(point["zones"]) == {"Left", "Right"}
        assert sum(point["zones"].values()) == pytest.approx(point["count"], rel=0.01, abs=0.05)

    edge_stack.stop("web")
    times += [agent.drop_frame(frame, minute) for minute, frame in enumerate(test_frames[2:5], start=2)]
    health = agent.wait_until(lambda h: h["frames_since_start"] == 5, "frames counted while the server is down")
    agent.wait_until(lambda h: h["server_reachable"] is False, "the agent to notice the outage")
    assert health["queue_length"] == 3 and health["last_count"] > 0
    assert health["last_frame_at"] == times[-1].isoformat()
    assert health["oldest_queued_captured_at"] == times[2].isoformat()

    # The gateway restarts too, while the server is still down: its queue and what it has taken stay on disk.
    agent.stop()
    agent.start()
    health = agent.wait_until(lambda h: h["queue_length"] == 3, "the queue after the agent's restart")
    assert health["frames_since_start"] == 0  # no file counted twice

    edge_stack.start_web()
    agent.wait_until(lambda h: h["queue_length"] == 0 and h["server_reachable"], "the queue to drain", timeout=180)
    stored = stored_frames(edge_stack, agent, camera)
    assert [row[0] for row in stored] == times  # each frame once, in order
    assert len({row[1] for row in stored}) == 5 and all(row[1] for row in stored)


class RecordingProxy:
    """Passes requests to the server and keeps every request body, to see what leaves the gateway."""

    def __init__(self, upstream: str) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.bodies.append((self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.post(f"{upstream}{self.path}", data=body, headers=headers, timeout=60)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_privacy_mode_sends_no_image_bytes(edge_stack, skynet_onnx, test_frames, agents):
    camera = edge_stack.cameras["main"]
    proxy = RecordingProxy(edge_stack.url)
    try:
        agent = agents(proxy.url, edge_stack.token, camera, 22, "--model", str(skynet_onnx))
        agent.start()
        agent.drop_frame(test_frames[0], 0)
        agent.wait_until(lambda h: h["delivered"] == 1, "the result delivered")
    finally:
        proxy.server.shutdown()
    jpeg = test_frames[0].read_bytes()
    pixels = load_rgb(test_frames[0]).tobytes()
    [(path, body)] = proxy.bodies
    assert path == "/api/v1/edge-results/"
    assert b"\xff\xd8\xff" not in body  # no JPEG anywhere
    assert not any(jpeg[start : start + 64] in body for start in range(0, len(jpeg) - 64, 997))
    assert not any(pixels[start : start + 64] in body for start in range(0, len(pixels) - 64, 9973))
    assert len(body) < len(jpeg) / 4
    [row] = stored_frames(edge_stack, agent, camera)
    assert row[2] == "" and row[3] > 0
    assert not [p for p in edge_stack.stored_files() if p.suffix in (".jpg", ".jpeg") and "frames" in p.parts]


def test_full_mode_uploads_the_frame_for_the_servers_workers_to_count(edge_stack, test_frames, agents):
    camera = edge_stack.cameras["main"]
    agent = agents(edge_stack.url, edge_stack.token, camera, 23, "--mode", "full")
    agent.start()
    captured_at = agent.drop_frame(test_frames[0], 30)
    health = agent.wait_until(lambda h: h["delivered"] == 1, "the frame uploaded")
    assert health["model"] is None and health["last_count"] is None  # nothing counted on the gateway
    deadline = time.monotonic() + 120
    while not (rows := stored_frames(edge_stack, agent, camera)) and time.monotonic() < deadline:
        time.sleep(0.3)  # the server's worker counts it
    [(stored_at, _, image, count, model_name, _, content_hash)] = rows
    assert stored_at == captured_at and image and count > 0 and model_name == "csrnet-lite"
    assert content_hash == hashlib.sha256(test_frames[0].read_bytes()).hexdigest()  # the camera's own bytes


def test_a_camera_the_server_refuses_keeps_its_results_queued(edge_stack, skynet_onnx, test_frames, agents):
    # The token's gateway does not own this camera: a configuration mistake on the server, so nothing is thrown away.
    agent = agents(edge_stack.url, edge_stack.token, edge_stack.cameras["other"], 24, "--model", str(skynet_onnx))
    agent.start()
    agent.drop_frame(test_frames[0], 40)
    health = agent.wait_until(lambda h: h["last_error"] is not None, "the server's refusal")
    assert health["last_error"].startswith("HTTP 403") and health["queue_length"] == 1
    assert health["rejected"] == 0 and health["delivered"] == 0


def test_the_agent_counts_on_onnxruntime_without_importing_torch(skynet_onnx, test_frames):
    probe = (
        "import sys, numpy as np\n"
        "from edge.counters import load_counter\n"
        "from counting.images import load_rgb\n"
        f"counter = load_counter({str(skynet_onnx)!r})\n"
        f"print(counter.arch, float(counter.density(load_rgb({str(test_frames[0])!r})).sum()))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    arch, count = result.stdout.split()
    assert arch == "skynet-count" and np.isfinite(float(count))


def test_a_result_the_server_refuses_is_kept_aside_and_the_rest_still_arrive(edge_stack, tmp_path):
    camera = edge_stack.cameras["main"]
    density = np.zeros((30, 40), np.float32)
    density[5:8, 5:9] = 0.5  # 6 people on a 320x240 frame's grid

    def result(minute: int, values: np.ndarray) -> Outgoing:
        captured_at = f"2026-11-25T10:{minute:02d}:00+00:00"
        fields = {"camera": str(camera), "captured_at": captured_at, "count": "6.0", "width": "320", "height": "240"}
        fields |= {"model": "skynet-count", "model_version": "test.onnx@000000000000", "inference_ms": "5"}
        return Outgoing("edge-results", fields, "density", "density.npz", density_npz(values), captured_at)

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(result(0, density))
    outbox.put(result(1, np.where(density > 0, np.nan, 0)))  # a broken model's map
    outbox.put(result(2, density))
    state = DeliveryState()
    stop = threading.Event()
    sender = threading.Thread(target=Uploader(edge_stack.url, edge_stack.token, outbox.path, state).run, args=(stop,))
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while outbox.stats()["queue_length"] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        sender.join()
    stats = outbox.stats()
    assert (stats["queue_length"], stats["delivered"], stats["rejected"]) == (0, 2, 1)
    [(_, captured_at, answer)] = outbox.rejected_items()
    assert captured_at.startswith("2026-11-25T10:01") and answer.startswith("HTTP 400") and "finite" in answer
    rows = edge_stack.query(
        f"SELECT f.captured_at FROM ingest_frame f WHERE f.camera_id = {camera}"
        " AND f.captured_at >= '2026-11-25' AND f.captured_at < '2026-11-26' ORDER BY f.captured_at"
    )
    assert [row[0].minute for row in rows] == [0, 2]
