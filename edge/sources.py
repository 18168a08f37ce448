"""Where a gateway's frames come from: a folder the camera writes into (FTP upload, a recorder's export), an HTTP
snapshot URL polled at an interval, or a video stream (RTSP, or anything else OpenCV's FFmpeg back end opens) of
which one frame an interval is taken.

Each source yields `CapturedFrame`s until `stop` is set; a source that fails (camera off, network down) logs, waits and
tries again, and never ends the agent.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests

from counting.images import IMAGE_SUFFIXES, ImageError, load_rgb
from edge.outbox import Outbox, TakenFile

log = logging.getLogger(__name__)

MAX_RECONNECT_WAIT = 30.0


@dataclass(frozen=True)
class CapturedFrame:
    captured_at: datetime
    rgb: np.ndarray
    encoded: bytes  # the image as a file (the camera's own bytes where there are some), for full mode
    name: str  # for logs and the uploaded file's name
    taken: TakenFile | None = None  # the folder source's file, recorded with the result


class SourceError(RuntimeError):
    """A frame could not be had this time; the source tries again."""


class FolderSource:
    """Image files in `folder`, oldest first, each once (the outbox remembers which it took, across restarts).

    A file modified in the last `settle_s` seconds may still be being written and waits for the next look.
    """

    def __init__(self, folder: str | Path, outbox: Outbox, interval_s: float, settle_s: float = 1.0) -> None:
        self.folder = Path(folder)
        self.outbox = outbox
        self.interval_s = interval_s
        self.settle_s = settle_s
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder} is not a folder")

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        while not stop.is_set():
            for path, stat in self._waiting_files():
                if stop.is_set():
                    return
                taken = TakenFile(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
                try:
                    encoded = path.read_bytes()
                    rgb = load_rgb(encoded)
                except (ImageError, OSError) as error:
                    log.error("skipping %s: %s", path, error)
                    self.outbox.record_taken(taken)
                    continue
                yield CapturedFrame(datetime.fromtimestamp(stat.st_mtime, UTC), rgb, encoded, path.name, taken)
            stop.wait(self.interval_s)

    def _waiting_files(self) -> list[tuple[Path, os.stat_result]]:
        now = time.time()
        waiting = []
        for entry in os.scandir(self.folder):
            path = Path(entry.path)
            if not entry.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            stat = entry.stat()
            if now - stat.st_mtime < self.settle_s:
                continue
            if not self.outbox.was_taken(str(path.resolve()), stat.st_mtime_ns, stat.st_size):
                waiting.append((path, stat))
        return sorted(waiting, key=lambda item: (item[1].st_mtime_ns, item[0].name))


class SnapshotSource:
    """GET `url` every `interval_s` seconds (most IP cameras serve a JPEG snapshot this way; credentials may be in
    the URL)."""

    def __init__(self, url: str, interval_s: float, timeout_s: float = 10.0) -> None:
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        while not stop.is_set():
            started = time.monotonic()
            try:
                yield self.snapshot()
            except SourceError as error:
                log.error("%s", error)
            stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def snapshot(self) -> CapturedFrame:
        try:
            response = self.session.get(self.url, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise SourceError(f"snapshot from {_without_credentials(self.url)} failed: {error}") from error
        captured_at = datetime.now(UTC)
        if response.status_code != 200:
            raise SourceError(f"snapshot from {_without_credentials(self.url)}: HTTP {response.status_code}")
        try:
            rgb = load_rgb(response.content)
        except ImageError as error:
            raise SourceError(f"snapshot from {_without_credentials(self.url)}: {error}") from error
        return CapturedFrame(captured_at, rgb, response.content, f"snapshot-{captured_at:%Y%m%dT%H%M%S%f}.jpg")


class StreamSource:
    """One frame every `interval_s` seconds of a video stream.

    A reader thread keeps decoding the stream and holds only its newest frame: an RTSP client that stops reading
    falls behind (the frames pile up in its buffer) and would count the past. When the stream breaks, it reconnects
    with a growing wait.
    """

    def __init__(self, url: str, interval_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self._latest: tuple[datetime, np.ndarray] | None = None
        self._lock = threading.Lock()

    def frames(self, stop: threading.Event) -> Iterator[CapturedFrame]:
        import cv2

        reader = threading.Thread(target=self._read, args=(stop,), name="stream-reader", daemon=True)
        reader.start()
        last_taken: datetime | None = None
        while not stop.wait(self.interval_s):
            with self._lock:
                latest = self._latest
            if latest is None or latest[0] == last_taken:
                continue
            captured_at, bgr = latest
            last_taken = captured_at
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                log.error("could not encode a frame of %s", _without_credentials(self.url))
                continue
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            yield CapturedFrame(captured_at, rgb, jpeg.tobytes(), f"stream-{captured_at:%Y%m%dT%H%M%S%f}.jpg")
        reader.join(timeout=5)

    def _read(self, stop: threading.Event) -> None:
        import cv2

        wait = 1.0
        while not stop.is_set():
            capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG)
            if not capture.isOpened():
                log.error("cannot open stream %s; trying again in %.0f s", _without_credentials(self.url), wait)
                stop.wait(wait)
                wait = min(MAX_RECONNECT_WAIT, wait * 2)
                continue
            log.info("stream %s open", _without_credentials(self.url))
            # A network stream arrives at its own pace; a video file is read at its frame rate, as a camera sends.
            pace = 0.0 if "://" in self.url else 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 25.0)
            while not stop.is_set():
                if pace:
                    stop.wait(pace)
                ok, bgr = capture.read()
                if not ok:
                    log.error("stream %s ended or broke; reconnecting", _without_credentials(self.url))
                    break
                wait = 1.0
                with self._lock:
                    self._latest = (datetime.now(UTC), bgr)
            capture.release()
            stop.wait(wait)


def _without_credentials(url: str) -> str:
    """The URL as logs may show it: a camera's password stays out of them."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


Source = FolderSource | SnapshotSource | StreamSource
