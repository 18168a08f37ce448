"""The gateway agent fetches its camera's calibrated weights (ONNX) from the server, swaps them in between frames,
and keeps the model it has when the server answers 304, 404, an error, or a file that does not load."""

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnx
import pytest

from counting.images import load_rgb
from counting.models import load_model
from counting.onnx_export import export_onnx
from edge.agent import Agent
from edge.cli import edge_parser
from edge.counters import OnnxModel
from edge.outbox import Outbox
from edge.sources import CapturedFrame
from edge.weights import WeightsFetcher

CAMERA, TOKEN = 7, "gateway-secret"


@pytest.fixture(scope="module")
def versions(tmp_path_factory, shanghaitech) -> dict[str, bytes]:
    """Two calibrated versions as the server exports them (SkyNet-Count, metadata naming the version)."""
    folder = tmp_path_factory.mktemp("onnx")
    model, arch, _ = load_model("skynet-count")
    first = export_onnx(model, folder / "v1.onnx", {"arch": arch, "weights": f"cam{CAMERA}-v1 tuned.pt@aaaa"})
    graph = onnx.load(str(first))
    onnx.helper.set_model_props(graph, {"arch": arch, "weights": f"cam{CAMERA}-v2 tuned.pt@bbbb"})
    onnx.save(graph, str(folder / "v2.onnx"))
    return {f"cam{CAMERA}-v1": first.read_bytes(), f"cam{CAMERA}-v2": (folder / "v2.onnx").read_bytes()}


class WeightsServer:
    """`GET /api/v1/cameras/{id}/weights.onnx` as the server answers it, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.version: str | None = None  # None: the camera has no calibrated weights (404)
        self.body = b""
        self.status: int | None = None  # forces an answer (a server error)
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append({"path": self.path, **dict(self.headers)})
                if self.path != f"/api/v1/cameras/{CAMERA}/weights.onnx" or self.headers["Authorization"] != (
                    f"Token {TOKEN}"
                ):
                    return self._answer(403, b'{"detail": "not this gateway\'s camera"}')
                if server.status is not None:
                    return self._answer(server.status, b'{"detail": "busy"}')
                if server.version is None:
                    return self._answer(404, b'{"detail": "no calibrated weights"}')
                etag = f'"{server.version}"'
                headers = {"ETag": etag, "X-Weights-Version": server.version}
                if self.headers.get("If-None-Match") == etag:
                    return self._answer(304, b"", headers)
                return self._answer(200, server.body, headers)

            def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def serve(self, version: str | None, body: bytes = b"") -> None:
        self.version, self.body = version, body


@pytest.fixture
def server():
    weights_server = WeightsServer()
    yield weights_server
    weights_server.http.shutdown()
    weights_server.http.server_close()


class OwnModel:
    """The gateway's own model: counts nobody, so a count above zero comes from the fetched weights."""

    arch, version = "own", "own.onnx@0000"

    def density(self, rgb: np.ndarray) -> np.ndarray:
        return np.zeros((-(-rgb.shape[0] // 8), -(-rgb.shape[1] // 8)), np.float32)


@pytest.fixture(scope="module")
def frame(shanghaitech) -> CapturedFrame:
    path = sorted((shanghaitech / "part_B/test/images").glob("*.jpg"))[0]
    rgb = load_rgb(path)[:384, :512]
    return CapturedFrame(datetime(2026, 12, 3, 10, tzinfo=UTC), rgb, b"", path.name)


def make_agent(server: WeightsServer, state, own=None):
    outbox = Outbox(state / "outbox.sqlite3")
    fetcher = WeightsFetcher(server.url, TOKEN, CAMERA, state / "weights", threads=1)
    return Agent(server.url, TOKEN, CAMERA, None, "privacy", outbox, own or OwnModel(), fetcher)


def test_a_new_version_is_swapped_in_and_counts_the_next_frame(server, versions, frame, tmp_path):
    agent = make_agent(server, tmp_path)
    server.serve("cam7-v1", versions["cam7-v1"])
    agent.refresh_weights()
    assert isinstance(agent.counter, OnnxModel)
    assert (agent.counter.arch, agent.counter.version) == ("skynet-count", "cam7-v1 tuned.pt@aaaa")
    assert server.requests[-1]["Authorization"] == f"Token {TOKEN}"
    assert "If-None-Match" not in server.requests[-1]
    fields = agent.outgoing(frame).fields
    assert (fields["model"], fields["model_version"]) == ("skynet-count", "cam7-v1 tuned.pt@aaaa")
    assert float(fields["count"]) == pytest.approx(float(agent.counter.density(frame.rgb).sum()), abs=1e-3)
    assert float(fields["count"]) > 1  # the own model counts nobody
    stored = tmp_path / "weights" / "camera-7.onnx"
    assert stored.read_bytes() == versions["cam7-v1"]
    assert sorted(p.name for p in stored.parent.iterdir()) == ["camera-7.etag", "camera-7.onnx"]

    server.serve("cam7-v2", versions["cam7-v2"])
    agent.refresh_weights()
    assert server.requests[-1]["If-None-Match"] == '"cam7-v1"'
    assert agent.counter.version == "cam7-v2 tuned.pt@bbbb"
    assert agent.outgoing(frame).fields["model_version"] == "cam7-v2 tuned.pt@bbbb"
    assert stored.read_bytes() == versions["cam7-v2"]


def test_not_modified_keeps_the_model(server, versions, tmp_path):
    agent = make_agent(server, tmp_path)
    server.serve("cam7-v1", versions["cam7-v1"])
    agent.refresh_weights()
    current = agent.counter
    agent.refresh_weights()
    assert server.requests[-1]["If-None-Match"] == '"cam7-v1"'
    assert agent.counter is current


def test_no_calibrated_weights_keeps_the_gateways_own_model(server, frame, tmp_path):
    own = OwnModel()
    agent = make_agent(server, tmp_path, own)
    server.serve(None)
    agent.refresh_weights()
    assert agent.counter is own
    assert agent.outgoing(frame).fields["model_version"] == own.version
    assert not (tmp_path / "weights" / "camera-7.onnx").exists()


def test_weights_withdrawn_on_the_server_return_the_gateway_to_its_own_model(server, versions, tmp_path):
    own = OwnModel()
    agent = make_agent(server, tmp_path, own)
    server.serve("cam7-v1", versions["cam7-v1"])
    agent.refresh_weights()
    assert agent.counter is not own
    server.serve(None)  # the operator returned the camera to the default weights
    agent.refresh_weights()
    assert agent.counter is own
    assert not list((tmp_path / "weights").iterdir())


def test_a_corrupt_file_keeps_the_model_and_the_stored_copy(server, versions, tmp_path):
    agent = make_agent(server, tmp_path)
    server.serve("cam7-v1", versions["cam7-v1"])
    agent.refresh_weights()
    current = agent.counter
    for damaged in (versions["cam7-v2"][: len(versions["cam7-v2"]) // 2], b"<html>proxy error</html>"):
        server.serve("cam7-v2", damaged)
        agent.refresh_weights()
        assert agent.counter is current
    stored = tmp_path / "weights"
    assert (stored / "camera-7.onnx").read_bytes() == versions["cam7-v1"]
    assert (stored / "camera-7.etag").read_text() == '"cam7-v1"'
    assert sorted(p.name for p in stored.iterdir()) == ["camera-7.etag", "camera-7.onnx"]


def test_a_server_error_or_no_server_keeps_the_model(server, versions, tmp_path):
    agent = make_agent(server, tmp_path)
    server.serve("cam7-v1", versions["cam7-v1"])
    agent.refresh_weights()
    current = agent.counter
    server.status = 503
    agent.refresh_weights()
    assert agent.counter is current
    server.http.shutdown()
    server.http.server_close()
    agent.refresh_weights()
    assert agent.counter is current


def test_a_restarted_agent_counts_with_the_weights_it_fetched_before(server, versions, tmp_path):
    server.serve("cam7-v1", versions["cam7-v1"])
    make_agent(server, tmp_path).refresh_weights()
    restarted = WeightsFetcher(server.url, TOKEN, CAMERA, tmp_path / "weights", threads=1)
    model = restarted.stored()
    assert model.version == "cam7-v1 tuned.pt@aaaa"
    assert restarted.fetch().model is None  # 304: the server sees the version it holds
    assert server.requests[-1]["If-None-Match"] == '"cam7-v1"'


def test_a_graph_without_version_metadata_is_named_by_the_servers_version(server, versions, tmp_path):
    graph = onnx.load_from_string(versions["cam7-v1"])
    del graph.metadata_props[:]
    server.serve("cam7-v3", graph.SerializeToString())
    fetched = WeightsFetcher(server.url, TOKEN, CAMERA, tmp_path / "weights", threads=1).fetch()
    assert fetched.model.version == "cam7-v3"
    assert WeightsFetcher(server.url, TOKEN, CAMERA, tmp_path / "weights").stored().version == "cam7-v3"


def test_the_agent_fetches_at_start_and_then_every_interval(server, versions, frame, tmp_path):
    """`run` fetches from its own thread while frames are counted: the first frame may be counted with the gateway's
    own model, the frames after the swap with the calibrated weights; later fetches ask with the version held."""
    server.serve("cam7-v1", versions["cam7-v1"])

    def fetches() -> list[dict]:
        return [request for request in server.requests if request["path"].endswith("weights.onnx")]

    class TwoFrames:
        def frames(self, stop):
            yield frame
            deadline = time.monotonic() + 60
            while len(fetches()) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            yield frame

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    fetcher = WeightsFetcher(server.url, TOKEN, CAMERA, tmp_path / "weights", threads=1)
    Agent(server.url, TOKEN, CAMERA, TwoFrames(), "privacy", outbox, OwnModel(), fetcher, 0.1).run()
    assert len(fetches()) >= 3
    assert "If-None-Match" not in fetches()[0]
    assert all(request["If-None-Match"] == '"cam7-v1"' for request in fetches()[1:])
    queued, versions_sent = Outbox(tmp_path / "outbox.sqlite3"), []
    while (item := queued.next_due()) is not None:
        versions_sent.append(item.outgoing.fields["model_version"])
        queued.delivered(item)
    assert len(versions_sent) == 2 and versions_sent[-1] == "cam7-v1 tuned.pt@aaaa"


def test_the_cli_fetches_every_ten_minutes_by_default_and_never_with_zero():
    base = ["--server", "http://x", "--camera", "7", "--folder", "f"]
    assert edge_parser().parse_args(base).weights_refresh_min == 10
    assert edge_parser().parse_args([*base, "--weights-refresh-min", "0"]).weights_refresh_min == 0
    with pytest.raises(SystemExit):
        edge_parser().parse_args([*base, "--weights-refresh-min", "-1"])


def test_another_gateways_answer_changes_nothing(server, versions, tmp_path):
    """A 403 (a wrong token, or a camera of another gateway) is logged; nothing is stored or swapped."""
    server.serve("cam7-v1", versions["cam7-v1"])
    fetched = WeightsFetcher(server.url, "wrong-token", CAMERA, tmp_path / "weights").fetch()
    assert fetched.model is None and not fetched.withdrawn
    assert not (tmp_path / "weights").exists()
