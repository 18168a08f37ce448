"""Where a gateway's frames come from: a folder (oldest first, each file once, across restarts; files still being
written wait), an HTTP snapshot URL (a real HTTP server on loopback) and a video stream through OpenCV."""

import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice

import cv2
import numpy as np
import pytest

from counting.images import load_rgb
from edge.outbox import Outbox, Outgoing
from edge.sources import FolderSource, SnapshotSource, SourceError, StreamSource, _without_credentials
from tests.hostile_files import text_bomb_png


@pytest.fixture
def frames_dir(tmp_path, shanghaitech):
    folder = tmp_path / "camera"
    folder.mkdir()
    images = sorted((shanghaitech / "part_B/test/images").glob("*.jpg"))[:3]
    # Written at 10:00, 10:01, 10:02, named against that order: the source goes by time.
    for minute, (image, name) in enumerate(zip(images, ["c.jpg", "b.jpg", "a.jpg"], strict=True)):
        target = folder / name
        target.write_bytes(image.read_bytes())
        stamp = datetime(2026, 11, 20, 10, minute, tzinfo=UTC).timestamp()
        os.utime(target, (stamp, stamp))
    return folder


def take(source, n: int, timeout: float = 10.0, outbox: Outbox | None = None) -> list:
    """Up to `n` frames within `timeout`; with `outbox`, each is queued as the agent queues it, before the next."""
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    frames = []
    try:
        for frame in islice(source.frames(stop), n):
            if outbox is not None:
                queued = Outgoing("frames", {}, "image", frame.name, b"x", frame.captured_at.isoformat())
                outbox.put(queued, frame.taken)
            frames.append(frame)
        return frames
    finally:
        stop.set()
        timer.cancel()


def test_a_folder_gives_its_images_oldest_first_with_their_file_times(frames_dir, tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    (frames_dir / "notes.txt").write_text("not a frame")
    frames = take(FolderSource(frames_dir, outbox, interval_s=0.05), 3)
    assert [f.name for f in frames] == ["c.jpg", "b.jpg", "a.jpg"]
    assert [f.captured_at.minute for f in frames] == [0, 1, 2]
    assert frames[0].encoded == (frames_dir / "c.jpg").read_bytes()
    np.testing.assert_array_equal(frames[0].rgb, load_rgb(frames_dir / "c.jpg"))


def test_a_folder_file_is_taken_once_even_across_a_restart(frames_dir, tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    take(FolderSource(frames_dir, outbox, interval_s=0.05), 2, outbox=outbox)
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3")
    rest = take(FolderSource(frames_dir, reopened, interval_s=0.05), 3, timeout=1.0, outbox=reopened)
    assert [f.name for f in rest] == ["a.jpg"]


def test_a_file_still_being_written_waits_and_an_unreadable_one_is_skipped(frames_dir, tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    take(FolderSource(frames_dir, outbox, interval_s=0.05), 3, outbox=outbox)
    (frames_dir / "broken.jpg").write_bytes(b"not a jpeg")
    os.utime(frames_dir / "broken.jpg", (0, 0))
    (frames_dir / "text-bomb.png").write_bytes(text_bomb_png())  # Pillow raises ValueError on it
    os.utime(frames_dir / "text-bomb.png", (0, 0))
    (frames_dir / "new.jpg").write_bytes((frames_dir / "a.jpg").read_bytes())  # modified just now
    source = FolderSource(frames_dir, outbox, interval_s=0.05, settle_s=0.5)
    started = time.monotonic()
    [frame] = take(source, 1, outbox=outbox)
    assert frame.name == "new.jpg" and time.monotonic() - started >= 0.4
    for unreadable in ("broken.jpg", "text-bomb.png"):
        assert outbox.was_taken(str((frames_dir / unreadable).resolve()), *_stat(frames_dir / unreadable))


def _stat(path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="is not a folder"):
        FolderSource(tmp_path / "nowhere", Outbox(tmp_path / "outbox.sqlite3"), 1.0)


@pytest.fixture
def camera_server(shanghaitech):
    """An IP camera's snapshot URL: a JPEG at /snapshot.jpg, a 503 at /busy, text at /text."""
    jpeg = (shanghaitech / "part_B/test/images/IMG_1.jpg").read_bytes()

    class Camera(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body, kind = {
                "/snapshot.jpg": (200, jpeg, "image/jpeg"),
                "/text": (200, b"hello", "text/plain"),
            }.get(self.path, (503, b"busy", "text/plain"))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", jpeg
    server.shutdown()


def test_a_snapshot_url_gives_the_cameras_jpeg(camera_server):
    url, jpeg = camera_server
    frame = SnapshotSource(f"{url}/snapshot.jpg", interval_s=1.0).snapshot()
    assert frame.encoded == jpeg and frame.rgb.shape == (768, 1024, 3)
    assert abs((datetime.now(UTC) - frame.captured_at).total_seconds()) < 5


@pytest.mark.parametrize(("path", "message"), [("/busy", "HTTP 503"), ("/text", "cannot read")])
def test_a_failing_snapshot_is_a_clear_error_and_the_source_keeps_polling(camera_server, path, message):
    url, _ = camera_server
    source = SnapshotSource(f"{url}{path}", interval_s=0.05)
    with pytest.raises(SourceError, match=message):
        source.snapshot()
    assert take(source, 1, timeout=0.5) == []  # polled, logged, no frame, no crash


def test_an_unreachable_camera_is_a_clear_error():
    with pytest.raises(SourceError, match="failed"):
        SnapshotSource("http://127.0.0.1:9/snapshot.jpg", interval_s=1.0, timeout_s=2).snapshot()


def test_a_stream_gives_its_newest_frame_each_interval(tmp_path):
    video = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for index in range(50):
        bgr = np.zeros((240, 320, 3), np.uint8)
        bgr[:, :, 2] = 200  # red in BGR
        cv2.putText(bgr, str(index), (100, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        writer.write(bgr)
    writer.release()
    frames = take(StreamSource(str(video), interval_s=0.3), 3)
    assert len(frames) == 3
    assert len({f.captured_at for f in frames}) == 3
    for frame in frames:
        assert frame.rgb.shape == (240, 320, 3)
        assert frame.rgb[5, 5, 0] > 150 and frame.rgb[5, 5, 2] < 60  # red, turned to RGB
        np.testing.assert_allclose(load_rgb(frame.encoded)[5, 5], frame.rgb[5, 5], atol=12)


def test_a_stream_that_cannot_be_opened_yields_nothing_and_does_not_crash(tmp_path):
    assert take(StreamSource(str(tmp_path / "missing.avi"), interval_s=0.1), 1, timeout=1.0) == []


def test_logs_never_show_a_cameras_password():
    assert _without_credentials("rtsp://admin:secret@10.0.0.5:554/stream1") == "rtsp://***@10.0.0.5:554/stream1"
    assert _without_credentials("http://10.0.0.5/snapshot.jpg") == "http://10.0.0.5/snapshot.jpg"
