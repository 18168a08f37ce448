"""The paths machines probe (`/healthz`, `/readyz`, `/metrics`), answered before any other middleware.

Probes and scrapers reach a process over plain HTTP by whatever name they know it by (127.0.0.1, a container's name),
not by the public host behind the TLS proxy: answered here, they are neither refused for their Host header
(ALLOWED_HOSTS) nor redirected to HTTPS. None of these views reads the host, a session or a cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from webapp.health.metrics import prometheus_metrics
from webapp.health.views import healthz, readyz

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": prometheus_metrics,
}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        return probe(request) if probe else self.get_response(request)
