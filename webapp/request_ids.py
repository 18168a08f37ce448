"""Which request a log line belongs to, across processes.

Each web request gets an id (the caller's `X-Request-ID` when it is a plausible one, else a new one), answered in the
same header and written on every log line made while it is served. Tasks sent while serving it carry the id in a
message header (`webapp.celery_app.enqueue`), so a worker's lines about a frame name the upload that brought it; a
task sent by no request (the beat's) logs under its own task id.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
NO_REQUEST = "-"
_PLAUSIBLE = re.compile(r"[A-Za-z0-9._:-]{8,64}")

request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        token = request_id.set(given if _PLAUSIBLE.fullmatch(given) else uuid.uuid4().hex)
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id.get()
            return response
        finally:
            request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every record `request_id`, for the formatters (LOGGING in the settings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True
