"""Two worker hosts, end to end: gunicorn and two counting workers, each process with an empty folder of its own (its
MEDIA_ROOT, its weights cache, its temporary files) and no shared disk, sharing only PostgreSQL, Redis and the S3
bucket (moto's server on loopback, whatever the run's storage). Every upload is counted exactly once, by one worker or
the other, both take part, the pages' images come back, and no process's folder holds a frame."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests
from celery import Celery

from tests.e2e.stack import REDIS_DATABASES, Stack, running_stack
from tests.loopback import S3Server

FRAMES = 10
HOSTS = ("host-a", "host-b")
VIEWER = """
from django.contrib.auth import get_user_model
from webapp.accounts.roles import Role, assign_role
assign_role(get_user_model().objects.create_user("viewer", password="two-hosts-viewer"), Role.VIEWER)
"""


def bucket_settings(s3_server: S3Server) -> dict[str, str]:
    return {
        "CROWDSCOPE_STORAGE": "s3",
        "CROWDSCOPE_S3_BUCKET": s3_server.bucket,
        "CROWDSCOPE_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "CROWDSCOPE_S3_ACCESS_KEY_ID": "crowdscope-tests",
        "CROWDSCOPE_S3_SECRET_ACCESS_KEY": "crowdscope-tests",
    }


def own_folder(root: Path) -> dict[str, str]:
    """A host's environment for its empty folder: media, weights cache and temporary files all there."""
    for name in ("media", "cache", "tmp"):
        (root / name).mkdir(parents=True)
    return {
        "MEDIA_ROOT": str(root / "media"),
        "CROWDSCOPE_WEIGHTS_CACHE_DIR": str(root / "cache"),
        "TMPDIR": str(root / "tmp"),
    }


def wait_until_ready(stack: Stack, names: tuple[str, ...], timeout: float = 180) -> None:
    """Until every worker named answers a ping through the broker (so none misses the first frames)."""
    app = Celery(broker=stack.environment["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = [node for reply in app.control.ping(timeout=1.0) for node in reply]
        if all(any(node.startswith(f"{name}-") for node in nodes) for name in names):
            return
    raise AssertionError(f"workers {names} did not all answer; see their logs in {stack.folder}")


def counted_by(stack: Stack, name: str) -> set[int]:
    """The frames whose count the worker `name` logged (`frame N of camera C counted: ...`)."""
    log = (stack.folder / f"{name}.log").read_text(errors="replace")
    return {int(number) for number in re.findall(r"frame (\d+) of camera \d+ counted", log)}


def files_in(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def signed_in(stack: Stack) -> requests.Session:
    stack.manage("shell", "-c", VIEWER)
    session = requests.Session()
    session.get(f"{stack.url}/accounts/login/", timeout=30)
    answer = session.post(
        f"{stack.url}/accounts/login/",
        data={
            "username": "viewer",
            "password": "two-hosts-viewer",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        timeout=30,
    )
    assert answer.status_code == 200 and "sessionid" in session.cookies, answer.text[:500]
    return session


def test_two_worker_hosts_count_every_upload_once_sharing_no_disk(tmp_path, shanghaitech, s3_server):
    images = sorted((shanghaitech / "part_B" / "test" / "images").glob("IMG_*.jpg"))[:FRAMES]
    web = own_folder(tmp_path / "web")
    folder = tmp_path / "stack"
    folder.mkdir()
    settings = bucket_settings(s3_server) | web
    with running_stack("postgresql", folder, REDIS_DATABASES["two-hosts"], **settings) as stack:
        stack.stop("worker")  # the stack's own worker shares the web's folder: two hosts of their own instead
        for name in HOSTS:
            stack.start_worker(name, **own_folder(tmp_path / name))
        wait_until_ready(stack, HOSTS)

        camera = stack.cameras["main"]
        ids = []
        for minute, image in enumerate(images):
            response = stack.upload(camera, image, captured_at=f"2026-11-20T10:{minute:02d}:00+00:00")
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        bodies = [stack.wait_for(frame_id, {"done", "failed"}) for frame_id in ids]
        assert [body["status"] for body in bodies] == ["done"] * FRAMES, bodies

        # Exactly once each, by one host or the other, and both took part.
        per_frame = stack.query("SELECT frame_id, count(*) FROM ingest_result GROUP BY frame_id ORDER BY frame_id")
        assert per_frame == [(frame_id, 1) for frame_id in sorted(ids)]
        by_host = {name: counted_by(stack, name) for name in HOSTS}
        assert by_host["host-a"] | by_host["host-b"] == set(ids) and not by_host["host-a"] & by_host["host-b"]
        assert all(by_host.values()), by_host

        # What the pages show: the frame and its density (the camera page's heatmap), and the heatmap PNG.
        session = signed_in(stack)
        shown = session.get(f"{stack.url}/cameras/{camera}/frames.json", timeout=30).json()["frames"]
        assert {frame["id"] for frame in shown} == set(ids)
        for frame in shown:
            image = session.get(f"{stack.url}{frame['image']}", timeout=30)
            assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
            density = session.get(f"{stack.url}{frame['density']}", timeout=30)
            assert density.status_code == 200, density.text
        for body in bodies:
            heatmap = stack.get(body["links"]["heatmap"])
            assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")

        # Every file is in the bucket; no process's own folder holds one.
        stored = stack.stored_files()
        assert len([name for name in stored if name.parts[0] == "frames"]) == FRAMES
        assert len([name for name in stored if name.parts[0] == "results"]) == 2 * FRAMES
        for name in ("web", *HOSTS):
            assert files_in(tmp_path / name) == [], name
