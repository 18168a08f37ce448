"""Media in an S3-compatible bucket (django-storages against moto's S3 server on loopback, whatever the run's
storage): uploads, counting, retention and /readyz through it; a bucket that refuses writes or does not answer makes
uploads wait (503, Retry-After) and workers retry, losing nothing; workers load calibrated weights from a local copy.
And no code reads a stored file by its local path."""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from counting.models import default_weights
from tests import REPO
from tests.factories import FRAMES_URL, image_upload, queued_frame
from tests.loopback import S3Server, free_port
from tests.stored_media import stored_files
from webapp.calibration.models import WeightsVersion
from webapp.ingest import storage as media_storage
from webapp.ingest.models import Frame, Result
from workers.engines import camera_engine
from workers.tasks import count_frame

pytestmark = pytest.mark.django_db


class RefusingProxy:
    """An HTTP proxy in front of the S3 server that answers the next `refuse` object writes (PUT) with an S3 error,
    as a full, over-quota or throttling bucket does, and hangs up on the next `drop` requests unanswered, as a bucket
    that goes away does; everything else goes through unchanged."""

    def __init__(self, upstream: str, status: int, code: str) -> None:
        self.refuse, self.refused, self.drop, self.dropped = 0, 0, 0, 0
        host, port = upstream.removeprefix("http://").split(":")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: pytest shows failures, not every request
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.drop:
                    proxy.drop -= 1
                    proxy.dropped += 1
                    self.close_connection = True
                    return
                if self.command == "PUT" and proxy.refuse:
                    proxy.refuse -= 1
                    proxy.refused += 1
                    error = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>refused</Message></Error>"
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error.encode())
                    return
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bucket_folder(settings, s3_server: S3Server) -> str:
    """The test's media storage: a folder of its own in the session's bucket."""
    folder = f"tests/{uuid.uuid4().hex}"
    settings.STORAGES = {**settings.STORAGES, "default": s3_server.storage(folder)}
    return folder


def through(settings, s3_server: S3Server, folder: str, endpoint_url: str) -> None:
    """The media storage of `folder` reached through `endpoint_url` from now on."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_server.storage(folder, endpoint_url)}


@pytest.fixture
def full_bucket(settings, s3_server, bucket_folder, request) -> Iterator[RefusingProxy]:
    status, code = getattr(request, "param", (507, "XMinioStorageFull"))
    proxy = RefusingProxy(s3_server.endpoint_url, status, code)
    through(settings, s3_server, bucket_folder, proxy.url)
    yield proxy
    proxy.close()


def upload(api, camera, data: bytes):
    return api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(data)}, format="multipart")


def test_an_upload_is_a_private_object_in_the_bucket_streamed_by_the_api(
    api, camera, small_jpeg_bytes, s3_server, bucket_folder
):
    response = upload(api, camera, small_jpeg_bytes)
    assert response.status_code == 202, response.content
    frame = Frame.objects.get(pk=response.json()["id"])
    key = f"{bucket_folder}/{frame.image.name}"
    assert s3_server.keys(bucket_folder) == [key]
    stored = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert stored == small_jpeg_bytes
    grants = s3_server.client().get_object_acl(Bucket=s3_server.bucket, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner's alone: no public read
    assert all(grant["Grantee"].get("Type") == "CanonicalUser" for grant in grants)

    image = api.get(f"/api/v1/frames/{frame.pk}/image")
    assert image.status_code == 200 and b"".join(image.streaming_content) == small_jpeg_bytes
    assert s3_server.endpoint_url not in response.content.decode()  # no address of the bucket is handed out


def test_a_frame_is_counted_from_the_bucket_and_its_results_stored_there(
    camera, small_jpeg_bytes, s3_server, bucket_folder
):
    frame = queued_frame(camera, small_jpeg_bytes)
    count_frame.apply(args=[frame.pk]).get()

    result = Result.objects.get(frame=frame)
    assert result.count > 0
    names = [f"{bucket_folder}/{name}" for name in (frame.image.name, result.density.name, result.heatmap.name)]
    assert s3_server.keys(bucket_folder) == sorted(names)


def test_reading_a_file_while_the_bucket_is_unreachable_is_a_503_to_retry(
    api, camera, small_jpeg_bytes, settings, s3_server, bucket_folder
):
    frame = queued_frame(camera, small_jpeg_bytes)
    count_frame.apply(args=[frame.pk]).get()
    through(settings, s3_server, bucket_folder, f"http://127.0.0.1:{free_port()}")  # nothing listens there

    for path in ("image", "heatmap.png", "density.json"):
        answer = api.get(f"/api/v1/frames/{frame.pk}/{path}")
        assert answer.status_code == 503, (path, answer.content)
        assert answer["Retry-After"] == "30"
        assert "the media bucket is unreachable" in answer.json()["detail"]


def test_retention_deletes_the_objects_from_the_bucket(camera, small_jpeg_bytes, settings, s3_server, bucket_folder):
    settings.CROWDSCOPE_KEEP_FRAME_ROWS_DAYS = 0
    settings.CROWDSCOPE_KEEP_FRAME_IMAGES_DAYS = settings.CROWDSCOPE_KEEP_HEATMAPS_DAYS = 30
    settings.CROWDSCOPE_KEEP_DENSITY_MAPS_DAYS = 0
    old, recent = (
        queued_frame(camera, small_jpeg_bytes, captured_at=timezone.now() - timedelta(days=days)) for days in (45, 5)
    )
    for frame in (old, recent):
        count_frame.apply(args=[frame.pk]).get()
    old_result, recent_result = Result.objects.get(frame=old), Result.objects.get(frame=recent)
    expired = {f"{bucket_folder}/{name}" for name in (old.image.name, old_result.heatmap.name)}
    assert expired <= set(s3_server.keys(bucket_folder))

    call_command("expire_by_age")

    left = set(s3_server.keys(bucket_folder))
    assert not expired & left
    kept = {old_result.density.name, recent.image.name, recent_result.heatmap.name, recent_result.density.name}
    assert left == {f"{bucket_folder}/{name}" for name in kept}


@pytest.mark.parametrize(
    "full_bucket",
    [(507, "XMinioStorageFull"), (403, "QuotaExceeded"), (503, "SlowDown")],
    indirect=True,
    ids=["full", "over-quota", "throttling"],
)
def test_a_bucket_refusing_writes_makes_uploads_wait_and_stores_nothing(
    api, camera, small_jpeg_bytes, full_bucket, s3_server, bucket_folder
):
    full_bucket.refuse = 10  # more than boto3's own retries
    refused = upload(api, camera, small_jpeg_bytes)

    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] == "60"
    assert "the media bucket cannot take it now" in refused.json()["detail"]
    assert refused.json()["detail"].endswith("nothing was stored; send it again later")
    assert full_bucket.refused >= 1
    assert not Frame.objects.exists() and s3_server.keys(bucket_folder) == []

    full_bucket.refuse = 0
    assert upload(api, camera, small_jpeg_bytes).status_code == 202
    assert len(s3_server.keys(bucket_folder)) == 1


def test_an_unreachable_bucket_makes_uploads_wait(api, camera, small_jpeg_bytes, settings, s3_server, bucket_folder):
    through(settings, s3_server, bucket_folder, f"http://127.0.0.1:{free_port()}")  # nothing listens there

    refused = upload(api, camera, small_jpeg_bytes)

    assert refused.status_code == 503, refused.content
    assert refused["Retry-After"] == "60"
    detail = refused.json()["detail"]
    assert "the media bucket is unreachable (EndpointConnectionError)" in detail and "127.0.0.1" not in detail
    assert not Frame.objects.exists() and s3_server.keys(bucket_folder) == []


def test_a_worker_leaves_the_frame_queued_while_the_bucket_refuses_and_counts_it_once_after(
    camera, small_jpeg_bytes, full_bucket, caplog
):
    frame = queued_frame(camera, small_jpeg_bytes)  # stored while the bucket took writes
    full_bucket.refuse = 2  # the density maps of two tries (507 is not one of boto3's own retries)

    count_frame.apply(args=[frame.pk]).get()  # in this process the retries follow at once, each after the last

    frame.refresh_from_db()
    assert (frame.status, frame.error, frame.interruptions) == (Frame.Status.DONE, "", 0)
    waits = [record.getMessage() for record in caplog.records if record.name == "workers.tasks"]
    waits = [message for message in waits if message.endswith("trying again later")]
    assert len(waits) == 2 and "the media bucket cannot take it now (XMinioStorageFull, HTTP 507)" in waits[0]
    assert Result.objects.filter(frame=frame).count() == 1
    assert full_bucket.refused == 2


def test_a_worker_that_loses_the_bucket_retries_and_counts_the_frame_once_it_is_back(
    camera, small_jpeg_bytes, full_bucket, caplog
):
    frame = queued_frame(camera, small_jpeg_bytes)
    full_bucket.drop = 4  # reading the frame, boto3's own retry included, twice

    count_frame.apply(args=[frame.pk]).get()

    frame.refresh_from_db()
    assert (frame.status, frame.error, frame.interruptions) == (Frame.Status.DONE, "", 0)
    waits = [record.getMessage() for record in caplog.records if record.name == "workers.tasks"]
    assert any("the media bucket is unreachable" in message for message in waits), waits
    assert Result.objects.filter(frame=frame).count() == 1 and full_bucket.dropped == 4


def test_readyz_asks_for_the_bucket_and_names_it_when_unreachable(client, settings, s3_server, bucket_folder):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the broker is tests/webapp/test_health.py's
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["checks"]["media"]["state"] == "ok" and ready.json()["checks"]["media"]["ms"] >= 0
    assert s3_server.keys(bucket_folder) == []  # a HEAD of the bucket: nothing written

    through(settings, s3_server, bucket_folder, f"http://127.0.0.1:{free_port()}")
    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert unready.json()["checks"]["media"]["state"].startswith("failed: EndpointConnectionError")
    assert unready.json()["checks"]["database"]["state"] == "ok"

    no_bucket = s3_server.storage(bucket_folder)
    no_bucket["OPTIONS"]["bucket_name"] = "no-such-bucket"
    settings.STORAGES = {**settings.STORAGES, "default": no_bucket}
    missing = client.get("/readyz")
    assert missing.status_code == 503 and missing.json()["checks"]["media"]["state"].startswith("failed: ClientError")


def test_workers_load_calibrated_weights_from_a_local_copy_fetched_again_when_replaced(
    camera, settings, tmp_path, s3_server, bucket_folder
):
    settings.CROWDSCOPE_WEIGHTS_CACHE_DIR = tmp_path / "cache"
    checkpoint = Path(default_weights("csrnet-lite")).read_bytes()
    version = WeightsVersion(camera=camera, number=1, arch="csrnet-lite", held_out_frames=12, folds=3)
    version.held_out_mae_before, version.held_out_mae_after = 9.0, 3.0
    version.weights.save("v1.pt", ContentFile(checkpoint), save=False)
    version.save()
    camera.active_weights = version
    camera.save()

    engine, label = camera_engine(camera)
    copies = sorted((tmp_path / "cache").rglob("*.pt"))
    assert [copy.read_bytes() for copy in copies] == [checkpoint] and copies[0].name == "v1.pt"
    assert label == f"cam{camera.pk}-v1 v1.pt@{hashlib.sha256(checkpoint).hexdigest()[:12]}"
    assert engine.weights == copies[0]
    assert camera_engine(camera)[0] is engine  # unchanged in the bucket: the same copy, the same engine

    # The object replaced in the bucket (same name): a new copy and a new label.
    replaced = checkpoint + b"\0"  # torch ignores bytes after the archive's end
    default_storage.delete(version.weights.name)
    assert default_storage.save(version.weights.name, ContentFile(replaced)) == version.weights.name
    _, relabelled = camera_engine(camera)
    assert relabelled == f"cam{camera.pk}-v1 v1.pt@{hashlib.sha256(replaced).hexdigest()[:12]}"
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 2
    assert not list((tmp_path / "cache").rglob(".partial-*"))


# A stored file's local path (`FieldFile.path`, `storage.path`) exists only on the local disk: code that reads one
# cannot run against a bucket. MEDIA_ROOT is the local disk's (its setting, its free space) and the demo's scratch.
LOCAL_PATH_OF_A_STORED_FILE = re.compile(
    r"\.(image|weights|onnx|density|heatmap|history_cache|plan)\.path\b|storage\.path\("
)

MEDIA_ROOT_READERS = {"webapp/settings.py", "webapp/ingest/storage.py"}


def test_no_code_reads_a_stored_file_by_its_local_path():
    sources = [path for folder in ("webapp", "workers") for path in (REPO / folder).rglob("*.py")]
    uses = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if LOCAL_PATH_OF_A_STORED_FILE.search(line)
        or ("MEDIA_ROOT" in line and str(path.relative_to(REPO)) not in MEDIA_ROOT_READERS and "demo" not in path.parts)
    ]
    assert uses == []


def test_the_media_helpers_list_the_bucket_as_they_list_the_disk(small_jpeg_bytes, camera, bucket_folder):
    frame = queued_frame(camera, small_jpeg_bytes)
    assert stored_files() == [frame.image.name]
    assert stored_files("frames") == [frame.image.name] and stored_files("results") == []


def test_files_are_deleted_from_the_bucket_a_batch_a_request(monkeypatch, s3_server, bucket_folder):
    monkeypatch.setattr(media_storage, "BUCKET_DELETE_BATCH", 2)
    names = [default_storage.save(f"frames/{index}.jpg", ContentFile(b"jpeg")) for index in range(5)]
    requests_made = []
    default_storage.bucket.meta.client.meta.events.register(
        "before-call.s3.DeleteObjects", lambda **_: requests_made.append(1)
    )
    kept = default_storage.save("frames/kept.jpg", ContentFile(b"jpeg"))

    media_storage.delete_media_files(
        FieldFile(None, Frame._meta.get_field("image"), name) for name in [*names, "gone.jpg"]
    )

    assert s3_server.keys(bucket_folder) == [f"{bucket_folder}/{kept}"]
    assert len(requests_made) == 3  # 6 names, 2 a request
