"""Health for load balancers and orchestrators, JSON, no sign-in:

- `/healthz`: the process answers (liveness); touches nothing else.
- `/readyz`: the database, the broker and media storage answer (readiness): 200 when all do, else 503 naming what
  failed; why (the error's text, which may name hosts and paths) only to a caller on loopback, and in the log. The
  broker is not needed, and not checked, when tasks run in the web process. Nothing is written: media storage on the
  local disk is checked by looking at its folder (or the folder it will be made in); a bucket by asking for it (HEAD).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.accounts.addresses import client_address
from webapp.celery_app import app
from webapp.ingest.storage import on_local_disk

BROKER_TIMEOUT_S = 2.0
log = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "not used: tasks run in this process"
    with app.connection_for_write(settings.CELERY_BROKER_URL) as broker:
        broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
    return "ok"


def _media() -> str:
    if not on_local_disk(default_storage):
        # Cheap, and it writes nothing: run by every load balancer's probe, it must not fill the bucket's logs.
        default_storage.connection.meta.client.head_bucket(Bucket=default_storage.bucket_name)
        return "ok"
    # Probed every few seconds, it must write nothing: the folder (or, before the first upload, the nearest folder
    # above it, where it will be made) must be one this process may write in.
    location = Path(default_storage.location)
    nearest = next(folder for folder in (location, *location.parents) if folder.exists())
    if not nearest.is_dir():
        raise NotADirectoryError(f"{nearest} is not a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise PermissionError(f"this process may not write in {nearest}")
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": _database, "broker": _broker, "media": _media}


def _on_loopback(request) -> bool:
    """Whether the client (seen through trusted proxies) is on this host."""
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:  # no address at all
        return False


@never_cache
@require_GET
def readyz(request) -> JsonResponse:
    detailed = _on_loopback(request)
    answers, ready = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            state = check()
        except Exception as error:  # whatever stops a dependency from answering makes this process not ready
            reason = f"{type(error).__name__}: {error}"
            log.warning("readyz: %s failed: %s", name, reason)
            state, ready = f"failed: {reason}" if detailed else "failed", False
        answers[name] = {"state": state, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": answers}, status=200 if ready else 503)
