"""The gateway agent: frames from a source, counted on the gateway (privacy mode) or passed on as they are (full
mode), queued on disk, delivered by a sending thread, with a health report on a local HTTP port.

Privacy mode sends the count and the density map at 1/8 of the frame (float16, compressed: about 15 kB for a
1024x768 frame) to `/api/v1/edge-results/`; the server computes zone counts from that map with the camera's zones,
renders the heatmap and raises alerts. The frame itself never leaves the gateway. Full mode uploads the frame to
`/api/v1/frames/`, where the server's workers count it.

In privacy mode the agent also keeps its camera's calibrated weights (`edge.weights`): fetched at start and
every few minutes, swapped in between frames; every result names the model version that counted it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import numpy as np

from counting.density_files import density_npz
from edge.counters import Counter
from edge.outbox import Outbox, Outgoing
from edge.sources import CapturedFrame, Source
from edge.uploader import DeliveryState, Uploader

if TYPE_CHECKING:
    from edge.weights import WeightsFetcher

log = logging.getLogger(__name__)

MODES = ("privacy", "full")


@dataclass
class FrameState:
    """What the health report says about counting; written by the counting thread."""

    frames: int = 0
    last_frame_at: str | None = None
    last_count: float | None = None
    last_inference_ms: float | None = None


class Agent:
    def __init__(
        self,
        server: str,
        token: str,
        camera: int,
        source: Source,
        mode: str,
        outbox: Outbox,
        counter: Counter | None = None,
        weights: WeightsFetcher | None = None,
        weights_refresh_s: float = 600.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "privacy" and counter is None:
            raise ValueError("privacy mode counts on the gateway: it needs a model")
        self.camera = camera
        self.source = source
        self.mode = mode
        self.counter = counter  # swapped between frames when the camera's calibrated weights change
        self.own_counter = counter  # the gateway's own model, counted with when the camera has no calibrated weights
        self.counter_lock = threading.Lock()
        self.weights = weights if mode == "privacy" else None
        self.weights_refresh_s = weights_refresh_s
        self.outbox = outbox
        self.outbox_path = outbox.path
        self.frame_state = FrameState()
        self.delivery_state = DeliveryState()
        self.uploader = Uploader(server, token, self.outbox_path, self.delivery_state)
        self.started = time.time()
        self.stop = threading.Event()

    def use_counter(self, counter: Counter) -> None:
        """Count with `counter` from the next frame on (the frame being counted finishes with the one it began with)."""
        with self.counter_lock:
            previous, self.counter = self.counter, counter
        if previous is not counter:
            log.info("counting with %s %s (was %s)", counter.arch, counter.version, previous and previous.version)

    def refresh_weights(self) -> None:
        """Ask the server for the camera's calibrated weights once; swap them in when a new version arrives, return to
        the gateway's own model when the camera has none any more, keep the current model on any failure. Without a
        fetcher (full mode) there is nothing to ask."""
        if self.weights is None:
            return
        fetched = self.weights.fetch()
        if fetched.model is not None:
            self.use_counter(fetched.model)
        elif fetched.withdrawn and self.own_counter is not None:
            self.use_counter(self.own_counter)

    def _keep_weights_fresh(self) -> None:
        while not self.stop.is_set():
            try:
                self.refresh_weights()
            except Exception:  # whatever goes wrong, counting goes on with the model it has
                log.exception("calibrated weights: the refresh failed; keeping the current model")
            self.stop.wait(self.weights_refresh_s)

    def run(self) -> None:
        sender = threading.Thread(target=self.uploader.run, args=(self.stop,), name="sender", daemon=True)
        sender.start()
        if self.weights is not None:
            stored = self.weights.stored()  # a restart while the server is away keeps the calibrated weights
            if stored is not None:
                self.use_counter(stored)
            threading.Thread(target=self._keep_weights_fresh, name="weights", daemon=True).start()
        try:
            for frame in self.source.frames(self.stop):
                try:
                    outgoing = self.outgoing(frame)
                except Exception:  # one frame the model cannot take must not stop a gateway's counting
                    log.exception("could not count %s; skipping it", frame.name)
                    if frame.taken is not None:
                        self.outbox.record_taken(frame.taken)
                    continue
                self.outbox.put(outgoing, frame.taken)
                self._counted(frame, outgoing)  # after queueing: health never shows a counted frame not yet queued
                self.uploader.wake.set()
        finally:
            self.stop.set()
            sender.join(timeout=60)
            self.outbox.close()

    def outgoing(self, frame: CapturedFrame) -> Outgoing:
        height, width = frame.rgb.shape[:2]
        captured_at = frame.captured_at.isoformat()
        fields = {"camera": str(self.camera), "captured_at": captured_at}
        if self.mode == "full":
            return Outgoing("frames", fields, "image", frame.name, frame.encoded, captured_at)
        with self.counter_lock:
            counter = self.counter  # one model for the whole frame, even if a swap comes in the middle
        assert counter is not None, "privacy mode always has a model (__init__ refuses it without one)"
        started = time.perf_counter()
        density = counter.density(frame.rgb)
        inference_ms = (time.perf_counter() - started) * 1000
        count = float(density.sum(dtype=np.float64))
        fields |= {
            "count": f"{count:.4f}",
            "width": str(width),
            "height": str(height),
            "model": counter.arch,
            "model_version": counter.version,
            "inference_ms": f"{inference_ms:.1f}",
        }
        return Outgoing("edge-results", fields, "density", "density.npz", density_npz(density), captured_at)

    def _counted(self, frame: CapturedFrame, outgoing: Outgoing) -> None:
        count = float(outgoing.fields["count"]) if "count" in outgoing.fields else None
        inference_ms = float(outgoing.fields["inference_ms"]) if "inference_ms" in outgoing.fields else None
        state = self.frame_state
        state.frames += 1
        state.last_frame_at = frame.captured_at.isoformat()
        state.last_count = None if count is None else round(count, 2)
        state.last_inference_ms = None if inference_ms is None else round(inference_ms, 1)
        log.info(
            "%s captured %s%s",
            frame.name,
            state.last_frame_at,
            "" if count is None else f": {count:.1f} people in {inference_ms:.0f} ms",
        )

    def health(self, outbox: Outbox) -> dict[str, object]:
        with self.delivery_state.lock:
            delivery = {
                "server_reachable": self.delivery_state.server_reachable,
                "last_delivered_at": _iso(self.delivery_state.last_delivered_at),
                "last_error": self.delivery_state.last_error,
            }
        frames = self.frame_state
        return {
            "mode": self.mode,
            "camera": self.camera,
            "model": None if self.counter is None else {"arch": self.counter.arch, "version": self.counter.version},
            "uptime_s": round(time.time() - self.started, 1),
            "frames_since_start": frames.frames,
            "last_frame_at": frames.last_frame_at,
            "last_count": frames.last_count,
            "last_inference_ms": frames.last_inference_ms,
            **outbox.stats(),
            **delivery,
        }

    def serve_health(self, host: str, port: int) -> ThreadingHTTPServer:
        """GET /health answers the health report as JSON, for the site's monitoring or a person with curl."""
        agent = self

        class HealthHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/health":
                    self.send_error(404, "only /health is here")
                    return
                outbox = Outbox(agent.outbox_path)  # SQLite connections stay in their thread: one per request
                try:
                    body = json.dumps(agent.health(outbox)).encode()
                finally:
                    outbox.close()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

        server = ThreadingHTTPServer((host, port), HealthHandler)
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
