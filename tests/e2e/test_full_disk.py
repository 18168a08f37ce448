"""A full disk, end to end: the media storage on a real tmpfs of a few megabytes under gunicorn and a real worker.
Nothing accepted is lost: uploads wait (503) while the disk is full, frames already accepted wait for room and are
then counted, once each, and no write cut short leaves a partial file."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import REDIS_DATABASES, Stack, running_stack

DISK_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB megabytes, mounted for the test alone."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "media"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """A file that takes every free byte of `disk`, written until the file system says ENOSPC."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (b"\0" * 2**16, b"\0" * 2**12, b"\0"):
            try:
                while True:
                    os.write(descriptor, chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    finally:
        os.close(descriptor)
    return filler


def media_files(stack: Stack, filler: Path) -> list[str]:
    return [path.name for path in stack.stored_files() if path != filler]


def wait_for_log(stack: Stack, text: str, times: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (stack.folder / "worker.log").read_text(errors="replace").count(text) >= times:
            return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not log {text!r} {times} times; see {stack.folder / 'worker.log'}")


def test_a_full_disk_makes_uploads_wait_and_loses_no_accepted_frame(small_disk, tmp_path, shanghaitech):
    frames = [shanghaitech / "part_B" / "test" / "images" / f"IMG_{number}.jpg" for number in (1, 2, 3)]
    settings = {"MEDIA_ROOT": str(small_disk), "CROWDSCOPE_MIN_FREE_MB": "1", "CROWDSCOPE_STORAGE_RETRY_SECONDS": "2"}
    settings |= {"CROWDSCOPE_STORAGE": "local"}  # the local disk, whatever the run's storage
    (tmp_path / "stack").mkdir()
    with running_stack("postgresql", tmp_path / "stack", REDIS_DATABASES["full-disk"], **settings) as stack:
        camera = stack.cameras["main"]
        stack.stop("worker")
        accepted = [stack.upload(camera, frame).json()["id"] for frame in frames[:2]]
        filler = fill(small_disk)

        refused = stack.upload(camera, frames[2])
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "60"
        assert "under its reserve of 1 MB: nothing was stored" in refused.json()["detail"]
        assert stack.query("SELECT count(*) FROM ingest_frame") == [(2,)]

        # The accepted frames are counted, but their heatmaps and density maps find no room: they wait, not fail.
        stack.start_worker()
        wait_for_log(stack, "No space left on device; trying again later", times=4)
        assert {stack.get(f"/api/v1/frames/{pk}/").json()["status"] for pk in accepted} <= {"queued", "processing"}
        assert stack.query("SELECT count(*) FROM ingest_result") == [(0,)]
        waiting = media_files(stack, filler)
        assert len(waiting) == 2 and all("-frame." in name for name in waiting), waiting  # no partial result file

        filler.unlink()  # an operator makes room
        for pk in accepted:
            assert stack.wait_for(pk, {"done", "failed"}, timeout=120)["status"] == "done"
        again = stack.upload(camera, frames[2])
        assert again.status_code == 202, again.text
        assert stack.wait_for(again.json()["id"], {"done", "failed"})["status"] == "done"

        assert stack.query("SELECT count(*), count(DISTINCT frame_id) FROM ingest_result") == [(3, 3)]
        names = media_files(stack, filler)
        assert len(names) == 9, names  # each frame, its heatmap and its density map: no partial file left over
        assert sum("heatmap" in name for name in names) == sum("density" in name for name in names) == 3
