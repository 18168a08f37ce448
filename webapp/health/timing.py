"""A `Server-Timing` header on every answer: how long the web process took over the request, so that a browser's
developer tools and the fleet bench (`scripts/fleet_bench.py`) read server time apart from the network's."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

SERVER_TIMING_METRIC = "app"


class ServerTimingMiddleware:
    """First in MIDDLEWARE, so the figure holds every other middleware, the view and the template; a streamed answer's
    figure is up to its first byte only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        spent_ms = (time.perf_counter() - started) * 1000
        timing = f"{SERVER_TIMING_METRIC};dur={spent_ms:.1f}"
        response["Server-Timing"] = f"{response['Server-Timing']}, {timing}" if "Server-Timing" in response else timing
        return response
