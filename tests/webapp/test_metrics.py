"""/metrics against the real database and Redis, read with Prometheus's own text parser; request ids in logs."""

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from tests import REPO
from tests.factories import FRAMES_URL, frame_with_result, image_upload
from webapp.calibration.models import CalibrationJob
from webapp.cameras.models import Camera, Zone
from webapp.ingest.models import Frame
from webapp.metric_events import count_event, observe_seconds
from webapp.request_ids import RequestIdFilter

pytestmark = pytest.mark.django_db
EVENTS_REDIS = "redis://127.0.0.1:6379/11"  # a database of its own: no other test's events, no real queue


@pytest.fixture
def events(settings):
    settings.CELERY_BROKER_URL = EVENTS_REDIS
    store = redis.Redis.from_url(EVENTS_REDIS)
    store.flushdb()
    yield store
    store.flushdb()


def scrape(client, **request) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = client.get("/metrics", **request)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_an_upload_counted_shows_in_every_figure_of_its_camera(
    client, api, camera, gateway, small_jpeg_bytes, settings, events, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(FRAMES_URL, {"camera": camera.pk, "image": image_upload(small_jpeg_bytes)})
    assert response.status_code == 202
    frame = Frame.objects.select_related("result").get(pk=response.json()["id"])
    assert frame.status == Frame.Status.DONE, frame.error
    CalibrationJob.objects.create(camera=camera, status=CalibrationJob.Status.SWITCHED)

    figures = scrape(client)
    cam = (("camera_id", str(camera.pk)),)
    assert figures[("crowdscope_frames_received_total", cam)] == 1
    assert figures[("crowdscope_frames_counted_total", cam)] == 1
    assert ("crowdscope_frames_failed_total", cam) not in figures
    model = (("model", frame.result.model_name),)
    assert figures[("crowdscope_inference_seconds_count", model)] == 1
    assert figures[("crowdscope_inference_seconds_sum", model)] == pytest.approx(frame.result.inference_ms / 1000)
    assert figures[("crowdscope_inference_seconds_bucket", (("le", "+Inf"), *model))] == 1
    assert figures[("crowdscope_frame_latency_seconds_count", ())] == 1
    assert figures[("crowdscope_latest_count", cam)] == pytest.approx(frame.result.count)
    assert figures[("crowdscope_latest_count_timestamp_seconds", cam)] == frame.captured_at.timestamp()
    info = (("camera", camera.name), ("camera_id", str(camera.pk)), ("site", camera.site.name))
    assert figures[("crowdscope_camera_info", info)] == 1
    assert ("crowdscope_gateway_last_seen_timestamp_seconds", (("gateway", gateway.name),)) in figures
    assert figures[("crowdscope_calibration_jobs", (("status", "switched"),))] == 1
    assert figures[("crowdscope_calibration_jobs", (("status", "running"),))] == 0


def test_a_frame_failing_twice_is_one_failure(client, camera, events):
    frame = Frame.objects.create(
        camera=camera, captured_at="2026-12-01T10:00Z", content_hash="0" * 64, width=8, height=8
    )
    frame.mark_failed("the image cannot be read")
    frame.mark_failed("the image cannot be read, again")
    frame.refresh_from_db()
    assert (frame.status, frame.error) == (Frame.Status.FAILED, "the image cannot be read, again")
    assert scrape(client)[("crowdscope_frames_failed_total", (("camera_id", str(camera.pk)),))] == 1


def test_histogram_buckets_are_cumulative_and_count_every_observation(client, events):
    for seconds in (0.03, 0.3, 0.3, 7.0, 5000.0):
        observe_seconds("crowdscope_frame_latency_seconds", seconds)
    figures = scrape(client)
    bucket = {le: figures[("crowdscope_frame_latency_seconds_bucket", (("le", le),))] for le in ("0.05", "0.5", "10.0")}
    assert bucket == {"0.05": 1, "0.5": 3, "10.0": 4}
    assert figures[("crowdscope_frame_latency_seconds_bucket", (("le", "+Inf"),))] == 5
    assert figures[("crowdscope_frame_latency_seconds_sum", ())] == pytest.approx(5007.63)
    with pytest.raises(ValueError, match="no counter"):
        count_event("crowdscope_frames_received")  # its camera label is missing


def test_queue_lengths_are_read_from_the_broker(client, settings, events):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    events.rpush("count.csrnet-lite", "a", "b", "c")
    events.rpush("reports", "d")
    figures = scrape(client)
    assert figures[("crowdscope_queue_length", (("queue", "count.csrnet-lite"),))] == 3
    assert figures[("crowdscope_queue_length", (("queue", "reports"),))] == 1
    assert figures[("crowdscope_queue_length", (("queue", "calibrate"),))] == 0


def test_without_the_broker_events_are_dropped_and_state_still_answers(client, camera, settings, caplog):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    count_event("crowdscope_frames_received", camera_id=camera.pk)  # does not raise
    assert "metrics not recorded" in caplog.text
    figures = scrape(client)
    assert (
        "crowdscope_camera_info",
        (("camera", camera.name), ("camera_id", str(camera.pk)), ("site", camera.site.name)),
    ) in figures
    assert not any(name.startswith("crowdscope_frames_received") for name, _ in figures)


def test_metrics_answer_only_the_networks_in_the_setting(client, settings, events):
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    settings.CROWDSCOPE_METRICS_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics").status_code == 403  # loopback is no longer in the list


def test_metrics_refuse_another_host_reaching_them_through_a_local_proxy(client, settings, events):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 1
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    # What the client wrote to the left of the proxy's entry is its own, and forged.
    forged = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "127.0.0.1, 203.0.113.9"}
    assert client.get("/metrics", **forged).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200  # a scrape on this host, not proxied


def test_metrics_ignore_a_forwarded_for_from_an_untrusted_peer(client, settings, events):
    settings.CROWDSCOPE_TRUSTED_PROXIES = 0
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_metrics_answer_a_scraper_bearing_the_token_from_anywhere(client, settings, events):
    token = "s" * 40
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 403
    settings.CROWDSCOPE_METRICS_TOKEN = token
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    for wrong in (f"Bearer {token[:-1]}", f"Token {token}", "Bearer", "Bearer é"):
        assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=wrong).status_code == 403, wrong


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# Committed for real: the upload's on-commit enqueue then runs inside the request, as in production.
@pytest.mark.django_db(transaction=True)
def test_a_request_id_is_answered_and_follows_the_upload_into_its_counting_task(
    api, camera, small_jpeg_bytes, settings, events
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    handler = Captured()
    logging.getLogger().addHandler(handler)
    try:
        response = api.post(
            FRAMES_URL,
            {"camera": camera.pk, "image": image_upload(small_jpeg_bytes)},
            headers={"X-Request-ID": "gateway-7f3a9c21"},
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert response["X-Request-ID"] == "gateway-7f3a9c21"
    counted = [record for record in handler.records if record.name == "workers.tasks" and "counted" in record.msg]
    assert [record.request_id for record in counted] == ["gateway-7f3a9c21"]
    # An id that is not plausible is replaced by a new one.
    answered = api.get("/healthz", headers={"X-Request-ID": "x\nInjected: yes"})["X-Request-ID"]
    assert len(answered) == 32 and answered.isalnum()


def test_json_log_lines_carry_time_level_logger_and_request_id():
    code = "import django, logging; django.setup(); logging.getLogger('webapp.probe').warning('probe %s', 7)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        check=True,
    )
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "webapp.probe",
        "request_id": "-",
        "message": "probe 7",
    }
    assert line["time"].endswith("+00:00")


def test_a_scrape_reads_the_latest_counts_in_the_same_queries_for_one_camera_or_many(client, site, events):
    def add_counted_camera(index: int) -> None:
        camera = Camera.objects.create(site=site, name=f"Gate {index}")
        zone = Zone.objects.create(camera=camera, name="gate", polygon=[[0, 0], [8, 0], [8, 8]])
        frame_with_result(camera, datetime(2026, 12, 1, 9, 59, tzinfo=UTC), 100.0 + index)  # older: not the latest
        frame_with_result(camera, datetime(2026, 12, 1, 10, tzinfo=UTC), index, {zone: index / 2})

    def queries() -> tuple[int, dict]:
        with CaptureQueriesContext(connection) as captured:
            figures = scrape(client)
        return len(captured), figures

    add_counted_camera(0)
    one, _ = queries()
    for index in range(1, 5):
        add_counted_camera(index)
    many, figures = queries()
    assert many == one
    cameras = Camera.objects.order_by("pk")
    assert [figures["crowdscope_latest_count", (("camera_id", str(c.pk)),)] for c in cameras] == [0, 1, 2, 3, 4]
    assert figures["crowdscope_latest_zone_count", (("camera_id", str(cameras[4].pk)), ("zone", "gate"))] == 2.0


def test_a_camera_without_a_site_is_scraped_with_an_empty_site(client, events):
    """Sites are optional: such a camera once made /metrics answer 500 ('NoneType' object has no attribute 'name')."""
    camera = Camera.objects.create(name="Loose")
    frame_with_result(camera, datetime(2026, 12, 1, 10, tzinfo=UTC), 7.0)
    figures = scrape(client)
    assert figures["crowdscope_camera_info", (("camera", "Loose"), ("camera_id", str(camera.pk)), ("site", ""))] == 1
    assert figures["crowdscope_latest_count", (("camera_id", str(camera.pk)),)] == 7.0
