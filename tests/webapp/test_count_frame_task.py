"""The count task run in this process with the real model: what it stores, once only, and what it keeps of the frame."""

import errno
import io
import posixpath
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils import timezone
from PIL import Image

from counting.engine import CountingEngine
from counting.images import load_rgb
from counting.zones import zone_counts
from tests.factories import half_zones, queued_frame
from tests.stored_media import replace_stored, stored_bytes, stored_files
from webapp.cameras.models import Zone
from webapp.ingest.models import Frame, Result, ZoneCount
from webapp.ingest.results import Counted, store_result
from workers.tasks import count_frame, requeue_stale_frames

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def engine():
    return CountingEngine()  # our default weights, loaded apart from the workers' cached engine


def run_task(frame: Frame) -> Frame:
    count_frame.apply(args=[frame.pk]).get()  # .get() raises whatever the task raised
    frame.refresh_from_db()
    return frame


def stored_density(result: Result) -> np.ndarray:
    with result.density.open("rb") as handle, np.load(handle) as stored:
        return stored["density"].astype(np.float32)


def test_the_count_is_the_engines_count_of_the_same_file(camera, jpeg_path, jpeg_bytes, engine):
    frame = run_task(queued_frame(camera, jpeg_bytes))

    assert frame.status == Frame.Status.DONE and frame.error == ""
    expected = engine.count(load_rgb(jpeg_path)).count
    assert frame.result.count == pytest.approx(expected, rel=1e-4)
    assert frame.result.model_name == engine.arch
    assert frame.result.model_version.startswith(f"{engine.weights.name}@")


def test_zone_counts_integrate_the_stored_density(camera, jpeg_bytes):
    polygons = half_zones(1024, 768)
    zones = {Zone.objects.create(camera=camera, name=name, polygon=p).pk: name for name, p in polygons.items()}

    result = run_task(queued_frame(camera, jpeg_bytes)).result

    stored = {row.zone_id: row for row in result.zone_counts.all()}
    assert {row.zone_name for row in stored.values()} == {"left", "right"}
    expected = zone_counts(stored_density(result), {pk: polygons[name] for pk, name in zones.items()})
    for pk, count in expected.items():
        assert stored[pk].count == pytest.approx(count, rel=1e-3)  # the stored map is float16
    assert sum(row.count for row in stored.values()) == pytest.approx(result.count, rel=1e-3)
    assert 0 < stored[min(stored)].count < result.count


def test_a_frame_is_never_counted_twice(camera, small_jpeg_bytes):
    """A redelivered task, and a racing delivery that reaches the store step second, leave one result."""
    for name, polygon in half_zones(320, 240).items():
        Zone.objects.create(camera=camera, name=name, polygon=polygon)
    frame = run_task(queued_frame(camera, small_jpeg_bytes))
    first = frame.result

    assert count_frame.apply(args=[frame.pk]).get() is None
    density = np.ones((30, 40), dtype=np.float32)
    assert store_result(frame, Counted(1200.0, density, {}, {}, "csrnet-lite", "other.pt@0", 1.0)) is None

    assert list(Result.objects.values_list("pk", "count")) == [(first.pk, first.count)]
    assert ZoneCount.objects.count() == 2
    assert Frame.objects.get(pk=frame.pk).status == Frame.Status.DONE
    results = [posixpath.basename(name) for name in stored_files("results")]
    assert sorted(name.rsplit("-", 1)[1] for name in results) == ["density.npz", "heatmap.png"]


def test_a_corrupt_stored_frame_fails_with_a_readable_error(camera, jpeg_bytes):
    frame = queued_frame(camera, jpeg_bytes)
    replace_stored(frame.image.name, jpeg_bytes[: len(jpeg_bytes) // 3])

    frame = run_task(frame)

    assert frame.status == Frame.Status.FAILED
    assert "cannot read" in frame.error and "truncated" in frame.error
    assert not Result.objects.exists()


def test_a_missing_stored_frame_fails(camera, jpeg_bytes):
    frame = queued_frame(camera, jpeg_bytes)
    default_storage.delete(frame.image.name)

    frame = run_task(frame)

    assert frame.status == Frame.Status.FAILED
    assert frame.error
    assert not Result.objects.exists()


def test_retention_delete_removes_the_frame_after_counting(camera, jpeg_bytes, settings):
    settings.CROWDSCOPE_FRAME_RETENTION = "delete"
    frame = queued_frame(camera, jpeg_bytes)
    name = frame.image.name

    frame = run_task(frame)

    assert frame.status == Frame.Status.DONE
    assert not frame.image
    assert not default_storage.exists(name)
    assert stored_files("frames") == []


def test_retention_downscale_keeps_a_small_jpeg(camera, jpeg_bytes, settings):
    settings.CROWDSCOPE_FRAME_RETENTION = "downscale"
    settings.CROWDSCOPE_RETAINED_FRAME_MAX_SIDE = 200
    frame = queued_frame(camera, jpeg_bytes)
    original = frame.image.name

    frame = run_task(frame)

    assert frame.status == Frame.Status.DONE
    assert not default_storage.exists(original)
    with Image.open(io.BytesIO(stored_bytes(frame.image.name))) as kept:
        assert kept.format == "JPEG"
        assert max(kept.size) <= 200
        assert kept.size == (200, 150)
    assert stored_files("frames") == [frame.image.name]
    assert (frame.width, frame.height) == (1024, 768), "the frame's size is the size that was counted"


def test_retention_keep_keeps_the_original(camera, jpeg_bytes, settings):
    settings.CROWDSCOPE_FRAME_RETENTION = "keep"
    frame = queued_frame(camera, jpeg_bytes)
    name = frame.image.name

    frame = run_task(frame)

    assert frame.status == Frame.Status.DONE
    assert frame.image.name == name
    assert stored_bytes(name) == jpeg_bytes


def test_requeue_resends_only_frames_queued_too_long(camera, small_jpeg_bytes, settings):
    settings.CROWDSCOPE_REQUEUE_AFTER_SECONDS = 600
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the re-sent tasks run in this process
    long_ago, lately = timezone.now() - timedelta(seconds=700), timezone.now() - timedelta(seconds=500)
    stale = queued_frame(camera, small_jpeg_bytes, enqueued_at=long_ago)
    stuck = queued_frame(camera, small_jpeg_bytes, enqueued_at=long_ago, status=Frame.Status.PROCESSING)
    recent = queued_frame(camera, small_jpeg_bytes, enqueued_at=lately)
    never_sent = queued_frame(camera, small_jpeg_bytes, enqueued_at=None)  # the broker was down at upload
    failed = queued_frame(camera, small_jpeg_bytes, enqueued_at=long_ago, status=Frame.Status.FAILED, error="bad")

    before = timezone.now()
    assert requeue_stale_frames.apply().get() == 3

    for frame in (stale, stuck, recent, never_sent, failed):
        frame.refresh_from_db()
    assert stale.enqueued_at >= before and stuck.enqueued_at >= before and never_sent.enqueued_at >= before
    assert {stale.status, stuck.status, never_sent.status} == {Frame.Status.DONE}
    assert (recent.enqueued_at, recent.status) == (lately, Frame.Status.QUEUED)
    assert (failed.enqueued_at, failed.status) == (long_ago, Frame.Status.FAILED)
    assert requeue_stale_frames.apply().get() == 0, "nothing is left to re-send"


def test_a_frame_left_processing_by_a_dead_worker_is_sent_again_within_minutes(camera, small_jpeg_bytes, settings):
    """Not after the broker's visibility timeout (an hour): after CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS."""
    settings.CROWDSCOPE_PROCESSING_TIMEOUT_SECONDS = 300
    settings.CELERY_TASK_ALWAYS_EAGER = True
    started = timezone.now() - timedelta(seconds=400)
    orphan = queued_frame(
        camera, small_jpeg_bytes, status=Frame.Status.PROCESSING, processing_since=started, enqueued_at=started
    )
    lately = timezone.now() - timedelta(seconds=60)
    busy = queued_frame(
        camera, small_jpeg_bytes, status=Frame.Status.PROCESSING, processing_since=lately, enqueued_at=lately
    )
    assert requeue_stale_frames.apply().get() == 1
    orphan.refresh_from_db()
    busy.refresh_from_db()
    assert (orphan.status, orphan.interruptions) == (Frame.Status.DONE, 1)
    assert (busy.status, busy.interruptions) == (Frame.Status.PROCESSING, 0)  # its worker is still at it


@pytest.mark.parametrize(("before", "ends"), [(2, Frame.Status.DONE), (3, Frame.Status.FAILED)])
def test_a_frame_whose_workers_keep_dying_is_failed_past_the_limit(camera, small_jpeg_bytes, settings, before, ends):
    """Found processing as a task starts, the frame lost its last worker: one more interruption; past
    CROWDSCOPE_MAX_INTERRUPTIONS (3) it is not tried again (a frame that kills workers would take them all down)."""
    settings.CROWDSCOPE_MAX_INTERRUPTIONS = 3
    frame = queued_frame(camera, small_jpeg_bytes, status=Frame.Status.PROCESSING, interruptions=before)
    frame = run_task(frame)
    assert (frame.status, frame.interruptions) == (ends, before + 1)
    if ends == Frame.Status.FAILED:
        assert frame.error == "counting was interrupted 4 times (its worker died each time): not tried again"
        assert not Result.objects.filter(frame=frame).exists()


class DiskFullTwice(FileSystemStorage):
    """Media storage whose next `failures` writes find the disk full, as a full volume answers (ENOSPC)."""

    failures = 0

    def _save(self, name, content):
        if DiskFullTwice.failures:
            DiskFullTwice.failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device", name)
        return super()._save(name, content)


def test_a_full_disk_is_retried_later_not_a_failure(camera, small_jpeg_bytes, settings, local_disk, caplog):
    """The local disk: a bucket that refuses writes is tests/webapp/test_object_storage.py's."""
    frame = queued_frame(camera, small_jpeg_bytes)  # stored while there was room
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": f"{__name__}.DiskFullTwice"}}
    DiskFullTwice.failures = 2
    frame = run_task(frame)  # in this process the retries follow at once, each after the last
    assert (frame.status, frame.error, frame.interruptions) == (Frame.Status.DONE, "", 0)
    full = [record for record in caplog.records if record.name == "workers.tasks" and record.levelname == "WARNING"]
    assert len(full) == 2 and "No space left on device" in full[0].getMessage()
    assert Result.objects.filter(frame=frame).count() == 1
