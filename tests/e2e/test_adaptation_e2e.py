"""End to end: a camera added to a running system adapts itself once its first frames are counted, on a worker of
the `calibrate` queue, and its frames are recounted with the adapted weights."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests import REPO
from tests.e2e.stack import REDIS_DATABASES, Stack, running_stack
from webapp.queues import ADAPT_NEW_CAMERAS

FRAMES = 12
# A camera adapts after 12 counted frames over 3 hours of its day; the rule adapts whatever it measures (its gates
# are the library's tests' business: here the product's path is under test).
SETTINGS = {
    "CROWDSCOPE_ADAPTATION_MIN_FRAMES": str(FRAMES),
    "CROWDSCOPE_ADAPTATION_MIN_HOURS": "3",
    "CROWDSCOPE_ADAPTATION_RULE": json.dumps({"min_frames": 10, "novelty_threshold": 0, "min_count_change": 0}),
}


@pytest.fixture(scope="module")
def adapting_stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("adaptation-stack")
    with running_stack("postgresql", folder, REDIS_DATABASES["adaptation"], **SETTINGS) as stack:
        stack.start_worker("calibrate-worker", queues="calibrate")
        yield stack


def dim_frames(shanghaitech: Path) -> list[bytes]:
    """Part B test frames as a dim camera with a blue cast sees them: a camera the default weights never saw."""
    frames = []
    for path in sorted((shanghaitech / "part_B" / "test" / "images").glob("*.jpg"))[:FRAMES]:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) * 0.45 + np.array([0, 10, 40])
        buffer = io.BytesIO()
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        frames.append(buffer.getvalue())
    return frames


def wait_for_row(stack: Stack, sql: str, done: set[str], timeout: float = 300) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stack.query(sql)
        if rows and rows[0][0] in done:
            return rows[0]
        time.sleep(0.5)
    raise AssertionError(f"{sql!r} gave {rows} after {timeout} s; see {stack.folder}/*.log")


def test_a_new_camera_adapts_itself_after_its_first_frames_and_is_recounted(adapting_stack, shanghaitech):
    stack, camera = adapting_stack, adapting_stack.cameras["main"]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    ids = []
    for index, frame in enumerate(dim_frames(shanghaitech)):
        captured = start + timedelta(minutes=20 * index)  # 4 hours of the camera's day
        response = stack.upload(camera, frame, captured_at=captured.isoformat())
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    before = {frame_id: stack.wait_for(frame_id, {"done"})["count"] for frame_id in ids}

    # What the beat sends every 5 minutes, sent now.
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "call", ADAPT_NEW_CAMERAS],
        cwd=REPO,
        env=stack.environment,
        check=True,
        capture_output=True,
    )
    status, frames, version_id, recount_id, automatic = wait_for_row(
        stack,
        "SELECT status, frames, result_version_id, recount_id, automatic FROM calibration_adaptationjob "
        f"WHERE camera_id = {camera}",
        {"switched", "kept", "failed"},
    )
    assert status == "switched" and frames == FRAMES and automatic
    (active,) = stack.query(f"SELECT active_weights_id FROM cameras_camera WHERE id = {camera}")[0]
    assert active == version_id
    (kind, number) = stack.query(f"SELECT kind, number FROM calibration_weightsversion WHERE id = {version_id}")[0]
    assert (kind, number) == ("adapted", 1)

    recount_status, recounted = wait_for_row(
        stack, f"SELECT status, frames FROM calibration_recountjob WHERE id = {recount_id}", {"done", "failed"}
    )
    assert (recount_status, recounted) == ("done", FRAMES)
    after = {frame_id: stack.get(f"/api/v1/frames/{frame_id}/").json() for frame_id in ids}
    assert all(body["model"]["version"].startswith(f"cam{camera}-v1 ") for body in after.values())
    assert any(abs(after[i]["count"] - before[i]) > 1e-3 for i in ids)

    # The beat's next look queues nothing more: the camera has adapted.
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "call", ADAPT_NEW_CAMERAS],
        cwd=REPO,
        env=stack.environment,
        check=True,
        capture_output=True,
    )
    time.sleep(3)
    assert stack.query(f"SELECT count(*) FROM calibration_adaptationjob WHERE camera_id = {camera}")[0][0] == 1
    assert requests.get(f"{stack.url}/healthz", timeout=10).status_code == 200
