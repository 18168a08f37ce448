"""Operations' figures at `/metrics`, in Prometheus's text format, for clients in CROWDSCOPE_METRICS_NETWORKS (their
address as `client_address` sees it, through trusted proxies) and for scrapers bearing CROWDSCOPE_METRICS_TOKEN.

Events (frames received, counted and failed, latencies, email deliveries) are the totals every process adds to the
broker (`webapp.metric_events`); state (latest counts, gateways' last contact, calibration jobs, queue lengths) is
read where it lives, at scrape time. Cameras are labelled by id, which never changes; `crowdscope_camera_info` maps
ids to names and sites.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections import defaultdict
from collections.abc import Iterator

import redis
from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from counting.specs import ARCHITECTURE_NAMES
from webapp.accounts.addresses import client_address
from webapp.calibration.models import CalibrationJob
from webapp.cameras.models import Camera, Gateway
from webapp.ingest.models import LatestCount, ZoneCount
from webapp.metric_events import COUNTERS, EVENTS_KEY, HISTOGRAMS, LATENCY_BUCKETS, events_store
from webapp.queues import CALIBRATE_QUEUE, DEFAULT_QUEUE, REPORTS_QUEUE, count_queue

log = logging.getLogger(__name__)


def _event_families(totals: dict[bytes, bytes]) -> Iterator[Metric]:
    counters = {name: CounterMetricFamily(name, text, labels=labels) for name, (text, labels) in COUNTERS.items()}
    buckets: dict[tuple[str, tuple], list[float]] = {}
    sums: dict[tuple[str, tuple], float] = {}
    for raw_field, raw_value in sorted(totals.items()):
        kind, name, labels, bucket = json.loads(raw_field)
        value = float(raw_value)
        if kind == "counter" and name in counters:
            counters[name].add_metric([labels[label] for label in COUNTERS[name][1]], value)
        elif kind in ("bucket", "sum") and name in HISTOGRAMS:
            series = (name, tuple(labels[label] for label in HISTOGRAMS[name][1]))
            if kind == "sum":
                sums[series] = value
            else:
                buckets.setdefault(series, [0.0] * (len(LATENCY_BUCKETS) + 1))[bucket] += value
    yield from counters.values()
    histograms = {name: HistogramMetricFamily(name, text, labels=labels) for name, (text, labels) in HISTOGRAMS.items()}
    for (name, label_values), counts in buckets.items():
        cumulative, running = [], 0.0
        for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], counts, strict=True):
            running += count
            cumulative.append((bound, running))
        histograms[name].add_metric(list(label_values), cumulative, sum_value=sums.get((name, label_values), 0.0))
    yield from histograms.values()


def _queue_lengths() -> GaugeMetricFamily:
    family = GaugeMetricFamily("crowdscope_queue_length", "tasks waiting in each queue of the broker", labels=["queue"])
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return family  # tasks run in the web process: there are no queues
    queues = [*(count_queue(arch) for arch in ARCHITECTURE_NAMES), DEFAULT_QUEUE, REPORTS_QUEUE, CALIBRATE_QUEUE]
    pipeline = events_store().pipeline(transaction=False)
    for queue in queues:
        pipeline.llen(queue)
    for queue, length in zip(queues, pipeline.execute(), strict=True):
        family.add_metric([queue], length)
    return family


def _state_families() -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "crowdscope_camera_info", "each camera's name and site", labels=["camera_id", "camera", "site"]
    )
    latest = GaugeMetricFamily(
        "crowdscope_latest_count", "people in the camera's newest counted frame", labels=["camera_id"]
    )
    latest_at = GaugeMetricFamily(
        "crowdscope_latest_count_timestamp_seconds", "when that frame was captured (Unix time)", labels=["camera_id"]
    )
    zones = GaugeMetricFamily(
        "crowdscope_latest_zone_count", "people in each zone of that frame", labels=["camera_id", "zone"]
    )
    # Two queries however many cameras and however long the history: Prometheus scrapes every few seconds. The latest
    # counts are one small table's rows (`LatestCount`), their zones read by result id within their capture times.
    cameras = list(Camera.objects.select_related("site", "latest_count").order_by("pk"))
    newest = [camera.latest_count for camera in cameras if _latest_count(camera) is not None]
    zone_counts: dict[int, list[tuple[str, float]]] = defaultdict(list)
    if newest:
        zone_rows = ZoneCount.objects.filter(
            result_id__in=[latest_count.result_id for latest_count in newest],
            captured_at__gte=min(latest_count.captured_at for latest_count in newest),
            captured_at__lte=max(latest_count.captured_at for latest_count in newest),
        ).values_list("result_id", "zone_name", "count")
        for result_id, zone_name, count in zone_rows.order_by("result_id", "zone_name"):
            zone_counts[result_id].append((zone_name, count))
    for camera in cameras:
        info.add_metric([str(camera.pk), camera.name, camera.site.name if camera.site else ""], 1)
        latest_count = _latest_count(camera)
        if latest_count is None:
            continue
        latest.add_metric([str(camera.pk)], latest_count.count)
        latest_at.add_metric([str(camera.pk)], latest_count.captured_at.timestamp())
        for zone_name, count in zone_counts[latest_count.result_id]:
            zones.add_metric([str(camera.pk), zone_name], count)
    yield from (info, latest, latest_at, zones)

    seen = GaugeMetricFamily(
        "crowdscope_gateway_last_seen_timestamp_seconds",
        "a gateway's last authenticated request (Unix time)",
        labels=["gateway"],
    )
    for gateway in Gateway.objects.filter(last_seen_at__isnull=False):
        seen.add_metric([gateway.name], gateway.last_seen_at.timestamp())
    yield seen

    jobs = GaugeMetricFamily("crowdscope_calibration_jobs", "calibration jobs by status", labels=["status"])
    by_status = dict(CalibrationJob.objects.values_list("status").annotate(n=Count("pk")))
    for job_status in CalibrationJob.Status.values:
        jobs.add_metric([job_status], by_status.get(job_status, 0))
    yield jobs


def _latest_count(camera: Camera) -> LatestCount | None:
    try:
        return camera.latest_count
    except LatestCount.DoesNotExist:
        return None


class _Figures:
    """The collector a scrape reads: events from Redis, state from the database and the broker."""

    def collect(self) -> Iterator[Metric]:
        try:
            totals = events_store().hgetall(EVENTS_KEY)
            yield from _event_families(totals)
            yield _queue_lengths()
        except redis.RedisError as error:
            log.warning("metrics: the broker did not answer: %s", error)
        yield from _state_families()


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(network, strict=False) for network in settings.CROWDSCOPE_METRICS_NETWORKS]


def _bears_the_token(request) -> bool:
    """Whether the request says `Authorization: Bearer <CROWDSCOPE_METRICS_TOKEN>` (never, when no token is set)."""
    token = settings.CROWDSCOPE_METRICS_TOKEN
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def _in_allowed_networks(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:  # no address at all
        return False
    return any(parsed in network for network in allowed_networks())


@never_cache
@require_GET
def prometheus_metrics(request) -> HttpResponse:
    address = client_address(request)
    if not (_in_allowed_networks(address) or _bears_the_token(request)):
        refusal = f"{address or 'this client'} is not in CROWDSCOPE_METRICS_NETWORKS and bears no valid token\n"
        return HttpResponseForbidden(refusal, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
