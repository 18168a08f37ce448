"""Batched counting, end to end: frames of several cameras uploaded over HTTP wait in the queue of a batched model
(CROWDSCOPE_BATCHED_MODELS), their messages are lost and re-sent by `requeue_stale_frames`, then a worker with a pool
of threads counts them in batches. Each frame gets exactly one result, the count of the frame counted alone; a frame
whose stored file went bad fails by itself.

The stack runs on a Redis of its own (a free port): Redis databases 10 to 15 of the shared one are other stacks'.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from PIL import Image

from tests import REPO
from tests.e2e.stack import Stack, running_stack
from tests.e2e.test_faults import OwnRedis

BATCH = 4
THREADS = 2 * BATCH  # as compose's gpu-worker: one batch stored while the next is counted
QUEUE = "count.csrnet-lite"
# (camera, ShanghaiTech Part B test frame, size): 1024x768 frames and 800x600 ones, mixed, of four cameras.
UPLOADS = [
    ("main", "IMG_1.jpg", (1024, 768)),
    ("other", "IMG_2.jpg", (1024, 768)),
    ("north", "IMG_3.jpg", (800, 600)),
    ("south", "IMG_4.jpg", (1024, 768)),
    ("main", "IMG_5.jpg", (800, 600)),
    ("other", "IMG_6.jpg", (1024, 768)),
    ("north", "IMG_7.jpg", (1024, 768)),
    ("south", "IMG_8.jpg", (1024, 768)),
    ("main", "IMG_9.jpg", (1024, 768)),
]
SPOILED = 4  # the upload whose stored file is overwritten with bytes that are no image
# One gateway sends them all (the frames' pages answer its token): "Other" joins it, North and South are new.
MORE_CAMERAS = """
from webapp.cameras.models import Camera, Gateway, Site
gateway = Gateway.objects.get(name="gateway")
gateway.cameras.add(Camera.objects.get(name="Other"))
for name in ("North", "South"):
    camera = Camera.objects.create(site=Site.objects.get(name="E2E"), name=name)
    gateway.cameras.add(camera)
    print(camera.pk)
"""
SPOIL = """
from django.core.files.base import ContentFile
from webapp.ingest.models import Frame
image = Frame.objects.get(pk={frame_id}).image
image.storage.delete(image.name)
assert image.storage.save(image.name, ContentFile(b"no longer a JPEG")) == image.name
"""
REQUEUE = "from workers.tasks import requeue_stale_frames; print(requeue_stale_frames())"


@pytest.fixture(scope="module")
def batch_stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack-batch")
    own_redis = OwnRedis(folder)
    own_redis.start()
    try:
        with running_stack(
            "postgresql",
            folder,
            0,
            redis_server=own_redis.url,
            CROWDSCOPE_BATCHED_MODELS="csrnet-lite",
            CROWDSCOPE_COUNT_BATCH_SIZE=str(BATCH),
            # Long enough for every thread to hand its frame in, however busy this machine: full batches.
            CROWDSCOPE_COUNT_BATCH_WAIT_MS="5000",
            COUNTING_PRECISION="fp32",
            CROWDSCOPE_REQUEUE_AFTER_SECONDS="0",  # every waiting frame counts as stale: re-sent when asked
        ) as stack:
            stack.stop("worker")  # the frames wait in the queue until the batching worker starts
            north, south = stack.manage("shell", "-c", MORE_CAMERAS).split()[-2:]
            stack.cameras |= {"north": int(north), "south": int(south)}
            yield stack
    finally:
        own_redis.stop()


@pytest.fixture(scope="module")
def frames(shanghaitech: Path, tmp_path_factory) -> list[Path]:
    """The uploads' JPEG files, each at its size."""
    folder = tmp_path_factory.mktemp("batch-frames")
    paths = []
    for index, (_, name, size) in enumerate(UPLOADS):
        image = Image.open(shanghaitech / "part_B/test/images" / name).convert("RGB").resize(size)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        paths.append(folder / f"{index}-{name}")
        paths[-1].write_bytes(buffer.getvalue())
    return paths


def counted_alone(paths: list[Path]) -> list[float]:
    """What `python -m counting count` says of each file, one by one, in fp32 as the worker counts."""
    result = subprocess.run(
        [sys.executable, "-m", "counting", "count", "--json", "--precision", "fp32", *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line["count"] for line in map(json.loads, result.stdout.splitlines())]


def queued_tasks(stack: Stack) -> list[str]:
    """The task name of each message waiting in the batched model's queue."""
    client = redis.Redis.from_url(stack.environment["REDIS_URL"])
    return [json.loads(message)["headers"]["task"] for message in client.lrange(QUEUE, 0, -1)]


def start_batching_worker(stack: Stack) -> None:
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", QUEUE]
    command += ["--pool", "threads", "--concurrency", str(THREADS), "-n", f"batch-{uuid.uuid4().hex[:6]}@%h"]
    command += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]  # INFO: its passes are logged
    log = (stack.folder / "batch-worker.log").open("ab")
    stack.processes["batch-worker"] = subprocess.Popen(
        command, cwd=REPO, env=stack.environment, stdout=log, stderr=log, start_new_session=True
    )


def test_frames_of_several_cameras_are_counted_in_batches_once_each_as_alone(batch_stack, frames):
    stack = batch_stack
    ids = []
    for (camera, _, _), path in zip(UPLOADS, frames, strict=True):
        response = stack.upload(stack.cameras[camera], path)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    assert queued_tasks(stack) == ["workers.tasks.count_frame_in_batch"] * len(UPLOADS)

    # Redis restarted without its data: the messages are gone, and the beat's task sends the frames again.
    redis.Redis.from_url(stack.environment["REDIS_URL"]).flushdb()
    assert stack.manage("shell", "-c", REQUEUE).split()[-1] == str(len(UPLOADS))
    assert queued_tasks(stack) == ["workers.tasks.count_frame_in_batch"] * len(UPLOADS)
    stack.manage("shell", "-c", SPOIL.format(frame_id=ids[SPOILED]))

    start_batching_worker(stack)
    bodies = [stack.wait_for(frame_id, {"done", "failed"}) for frame_id in ids]

    spoiled = bodies.pop(SPOILED)
    assert spoiled["status"] == "failed" and "cannot read" in spoiled["error"], spoiled
    expected = counted_alone([path for index, path in enumerate(frames) if index != SPOILED])
    for body, count in zip(bodies, expected, strict=True):
        assert body["status"] == "done", body["error"]
        assert body["count"] == pytest.approx(count, rel=1e-4)
        assert body["model"]["name"] == "csrnet-lite"
    main_zones = [body["zones"] for body in bodies if body["camera"] == stack.cameras["main"]]
    assert main_zones and all({zone["name"] for zone in zones} == {"Left", "Right"} for zones in main_zones)
    results = stack.query(
        f"SELECT frame_id, COUNT(*) FROM ingest_result WHERE frame_id IN ({','.join(map(str, ids))}) GROUP BY frame_id"
    )
    assert sorted(results) == sorted((frame_id, 1) for index, frame_id in enumerate(ids) if index != SPOILED)

    log = (stack.folder / "batch-worker.log").read_text(errors="replace")
    passes = [int(frames) for frames in re.findall(r"csrnet-lite counted (\d+) frames of \d+x\d+ in one pass", log)]
    assert sum(passes) == len(UPLOADS) - 1, log[-3000:]  # every good frame in one pass, none twice
    assert max(passes) > 1 and max(passes) <= BATCH, passes  # batches, of several cameras' frames
