"""End to end: gateway uploads over HTTP -> gunicorn -> Redis -> a Celery worker process -> results in the database,
on PostgreSQL and on SQLite."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import REPO

FRAMES = ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"]


@pytest.fixture(scope="session")
def part_b_frames(shanghaitech: Path) -> list[Path]:
    return [shanghaitech / "part_B" / "test" / "images" / name for name in FRAMES]


@pytest.fixture(scope="session")
def cli_counts(part_b_frames: list[Path]) -> dict[str, float]:
    """What `python -m counting count` says of the same files: the reference the platform must agree with."""
    result = subprocess.run(
        [sys.executable, "-m", "counting", "count", "--json", *map(str, part_b_frames)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return {Path(line["path"]).name: line["count"] for line in map(json.loads, result.stdout.splitlines())}


@pytest.fixture(scope="session")
def large_frame(part_b_frames: list[Path]) -> bytes:
    """A 4096x3072 frame: counted in tiles, long enough to kill a worker in the middle of it."""
    image = Image.open(part_b_frames[0]).resize((4096, 3072), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def test_uploaded_frames_are_counted_as_the_cli_counts_them(stack, part_b_frames, cli_counts):
    camera = stack.cameras["main"]
    ids = {}
    for minute, path in enumerate(part_b_frames):
        response = stack.upload(camera, path, captured_at=f"2026-11-20T10:0{minute}:00+00:00")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        ids[path.name] = response.json()["id"]

    for name, frame_id in ids.items():
        body = stack.wait_for(frame_id, {"done", "failed"})
        assert body["status"] == "done", body["error"]
        assert body["count"] == pytest.approx(cli_counts[name], rel=1e-4)
        zones = {zone["name"]: zone["count"] for zone in body["zones"]}
        assert set(zones) == {"Left", "Right"}
        assert sum(zones.values()) == pytest.approx(body["count"], rel=1e-3)
        assert body["model"]["name"] == "csrnet-lite"
        heatmap = stack.get(body["links"]["heatmap"])
        assert heatmap.headers["Content-Type"] == "image/png"
        with np.load(io.BytesIO(stack.get(body["links"]["density"]).content)) as stored:
            assert float(stored["density"].astype(np.float64).sum()) == pytest.approx(body["count"], rel=1e-2)

    series = stack.get(
        f"/api/v1/cameras/{camera}/counts/", **{"from": "2026-11-20T10:00:00Z", "to": "2026-11-20T11:00:00Z"}
    ).json()
    assert [point["frame"] for point in series["points"]] == list(ids.values())
    hourly = stack.get(
        f"/api/v1/cameras/{camera}/counts/",
        **{"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z", "bucket": "1h"},
    ).json()["points"]
    assert len(hourly) == 1 and hourly[0]["frames"] == 3
    assert hourly[0]["peak"] == pytest.approx(max(cli_counts.values()), rel=1e-4)
    assert stack.query(
        f"SELECT COUNT(*) FROM ingest_result WHERE frame_id IN ({','.join(map(str, ids.values()))})"
    ) == [(3,)]


def test_a_retried_upload_is_stored_once(stack, part_b_frames):
    camera = stack.cameras["main"]
    first = stack.upload(camera, part_b_frames[1], headers={"Idempotency-Key": f"retry-{stack.kind}"})
    again = stack.upload(camera, part_b_frames[1], headers={"Idempotency-Key": f"retry-{stack.kind}"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    stack.wait_for(first.json()["id"], {"done"})
    rows = stack.query(f"SELECT COUNT(*) FROM ingest_frame WHERE idempotency_key = 'retry-{stack.kind}'")
    assert rows == [(1,)]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_uploads_get_a_clear_error_and_store_and_queue_nothing(stack, part_b_frames):
    camera = stack.cameras["main"]
    jpeg = part_b_frames[2].read_bytes()
    frames_before = stack.query("SELECT COUNT(*) FROM ingest_frame")
    files_before = stack.stored_files()
    cases = {
        "no token": (stack.upload(camera, jpeg, headers={"Authorization": ""}), 401),
        "wrong token": (stack.upload(camera, jpeg, token="not-a-token"), 401),
        "camera of another gateway": (stack.upload(stack.cameras["other"], jpeg), 403),
        "not an image": (stack.upload(camera, b"this is a text file, not a frame\n" * 10), 400),
        "truncated image": (stack.upload(camera, jpeg[: len(jpeg) // 2]), 400),
        "zero bytes": (stack.upload(camera, b""), 400),
        "over the size limit": (stack.upload(camera, b"\xff" * (21 * 1024 * 1024)), 413),
        "decompression bomb": (stack.upload(camera, _png(20_000, 20_000)), 413),
        "unknown field": (stack.upload(camera, jpeg, priority="high"), 400),
    }
    for case, (response, expected) in cases.items():
        assert response.status_code == expected, f"{case}: {response.status_code} {response.text}"
        assert isinstance(response.json(), dict) and response.json(), case
    assert stack.query("SELECT COUNT(*) FROM ingest_frame") == frames_before
    assert stack.stored_files() == files_before
    assert stack.queued_messages() == 0


def _wait_until_processing(stack, frame_id: int) -> None:
    stack.wait_for(frame_id, {"processing"}, timeout=120)
    time.sleep(0.5)  # well inside the count of a 4096x3072 frame


def _results_of(stack, frame_id: int) -> list[tuple]:
    return stack.query(f"SELECT COUNT(*) FROM ingest_result WHERE frame_id = {frame_id}")


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
def test_a_frame_whose_worker_process_dies_is_counted_once_by_its_replacement(stack, large_frame):
    """The pool process dies mid-task: the worker hands the task back (reject on worker lost) and counts it again."""
    response = stack.upload(stack.cameras["main"], large_frame)
    frame_id = response.json()["id"]
    _wait_until_processing(stack, frame_id)
    children = subprocess.run(
        ["pgrep", "-P", str(stack.processes["worker"].pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert children, "the worker has no pool process"
    for child in children:
        subprocess.run(["kill", f"-{signal.SIGKILL.value}", child], check=True)
    body = stack.wait_for(frame_id, {"done", "failed"}, timeout=240)
    assert body["status"] == "done", body["error"]
    assert _results_of(stack, frame_id) == [(1,)]
    assert "WorkerLostError" in (stack.folder / "worker.log").read_text(), "the pool process was not lost mid-task"


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
def test_a_frame_whose_worker_host_dies_is_counted_once_by_another_worker(stack, large_frame):
    """The whole worker dies mid-task without a word: Redis hands the unacknowledged task to the next worker."""
    response = stack.upload(stack.cameras["main"], large_frame)
    frame_id = response.json()["id"]
    _wait_until_processing(stack, frame_id)
    stack.kill_worker_host()
    assert stack.get(f"/api/v1/frames/{frame_id}/").json()["status"] == "processing", "killed after the task ended"
    stack.start_worker("replacement")
    body = stack.wait_for(frame_id, {"done", "failed"}, timeout=240)
    assert body["status"] == "done", body["error"]
    assert _results_of(stack, frame_id) == [(1,)]
