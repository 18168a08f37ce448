"""A camera's calibrated weights for a gateway that counts on the edge: fetched from the server as ONNX, kept on disk.

`GET /api/v1/cameras/{camera}/weights.onnx` (with the gateway's token) answers:
- 200: the ONNX bytes, `X-Weights-Version` and `ETag` naming the version. The file is written beside the agent's
  queue (a temporary file, loaded with onnxruntime to prove it whole, then renamed over the previous one) and the
  agent counts with it from the next frame.
- 304: the version the gateway holds (sent as `If-None-Match`) is still current; nothing changes.
- 404: the camera has no calibrated weights (never calibrated, or returned to the default): the agent counts with
  its own model, and a calibrated file it held is removed.
- anything else, no answer, or a file onnxruntime cannot load: a warning, and the agent keeps the model it has.

The stored file survives restarts: a gateway that starts while the server is away counts with the calibrated
weights it last fetched. This module needs onnxruntime and requests, never torch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import requests

from edge.counters import OnnxModel

log = logging.getLogger(__name__)

WEIGHTS_DOWNLOAD_TIMEOUT_S = 60.0
MAX_BYTES = 512 * 1024 * 1024  # no counting model of ours comes near; a larger answer is not one
DEFAULT_REFRESH_MIN = 10.0


@dataclass(frozen=True)
class Fetched:
    """What one request found: `model` loaded from a new version (else None); `withdrawn` when the server said the
    camera has no calibrated weights."""

    model: OnnxModel | None = None
    withdrawn: bool = False


class WeightsFetcher:
    def __init__(self, server: str, token: str, camera: int, folder: str | Path, threads: int | None = None) -> None:
        self.url = f"{server.rstrip('/')}/api/v1/cameras/{camera}/weights.onnx"
        self.token = token
        self.threads = threads
        self.folder = Path(folder)
        self.path = self.folder / f"camera-{camera}.onnx"
        self.etag_path = self.folder / f"camera-{camera}.etag"

    def _etag(self) -> str | None:
        if not self.path.exists() or not self.etag_path.exists():
            return None
        return self.etag_path.read_text().strip() or None

    def stored(self) -> OnnxModel | None:
        """The calibrated weights fetched before (by an earlier run), or None when there are none or they do not
        load."""
        if not self.path.exists():
            return None
        try:
            model = OnnxModel(self.path, self.threads)
        except Exception as error:  # onnxruntime raises its own types for a damaged file
            log.warning("the stored calibrated weights %s do not load (%s); fetching them again", self.path, error)
            self.etag_path.unlink(missing_ok=True)
            return None
        return _named(model, (self._etag() or "").strip('"'))

    def fetch(self) -> Fetched:
        """One request; never raises for the server's or the file's faults (they are logged)."""
        headers = {"Authorization": f"Token {self.token}"}
        etag = self._etag()
        if etag:
            headers["If-None-Match"] = etag
        try:
            with requests.get(self.url, headers=headers, timeout=WEIGHTS_DOWNLOAD_TIMEOUT_S, stream=True) as response:
                if response.status_code == 304:
                    return Fetched()
                if response.status_code == 404:
                    return self._withdrawn()
                if response.status_code != 200:
                    log.warning(
                        "calibrated weights: HTTP %d from %s: %s; keeping the current model",
                        response.status_code,
                        self.url,
                        response.text[:300],
                    )
                    return Fetched()
                version = response.headers.get("X-Weights-Version") or (response.headers.get("ETag") or "").strip('"')
                new_etag = response.headers.get("ETag") or (f'"{version}"' if version else "")
                body = self._read(response)
        except requests.RequestException as error:
            log.warning("calibrated weights: %s unreachable (%s); keeping the current model", self.url, error)
            return Fetched()
        if body is None:
            return Fetched()
        model = self._install(body, new_etag)
        if model is not None:
            model = _named(model, version)
            log.info(
                "calibrated weights %s (%s) fetched: counting with them from the next frame", version, model.version
            )
        return Fetched(model=model)

    def _read(self, response: requests.Response) -> bytes | None:
        chunks, size = [], 0
        for chunk in response.iter_content(1024 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                log.warning("calibrated weights: the answer exceeds %d bytes; keeping the current model", MAX_BYTES)
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _install(self, body: bytes, etag: str) -> OnnxModel | None:
        """Write `body` beside the stored file, load it, then rename it over that file and record its ETag (in that
        order: a crash in between leaves an old ETag, which only fetches the file again)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(body)
            try:
                model = OnnxModel(temporary, self.threads)
            except Exception as error:  # onnxruntime raises its own types for a file that is not a whole graph
                log.warning("calibrated weights: the file fetched does not load (%s); keeping the current model", error)
                return None
            temporary.replace(self.path)
            etag_temporary = self.etag_path.with_name(f".{self.etag_path.name}.{os.getpid()}.tmp")
            etag_temporary.write_text(etag)
            etag_temporary.replace(self.etag_path)
            return model
        except OSError as error:
            log.warning(
                "calibrated weights: cannot store them in %s (%s); keeping the current model", self.folder, error
            )
            return None
        finally:
            temporary.unlink(missing_ok=True)

    def _withdrawn(self) -> Fetched:
        if self.path.exists():
            log.info("the camera has no calibrated weights any more; counting with the gateway's own model")
        self.path.unlink(missing_ok=True)
        self.etag_path.unlink(missing_ok=True)
        return Fetched(withdrawn=True)


def _named(model: OnnxModel, version: str) -> OnnxModel:
    """A graph without the export's `weights` metadata is named by the server's version, not by its file's name."""
    if "weights" not in model.counter.metadata and version:
        model.version = version
    return model
