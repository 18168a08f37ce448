"""Health for load balancers and orchestrators, JSON, no sign-in:

- `/healthz`: the process answers (liveness); touches nothing else.
- `/readyz`: the database, the broker and media storage answer (readiness): 200 when all do, else 503 naming what
  failed and why. The broker is not needed, and not checked, when tasks run in the web process. Media storage on the
  local disk is checked by writing and deleting a probe file; a bucket by asking for it (HEAD, nothing written).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.celery_app import app
from webapp.ingest.storage import on_local_disk

BROKER_TIMEOUT_S = 2.0


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
    name = default_storage.save(f"health/probe-{uuid.uuid4().hex}", ContentFile(b"ok"))
    default_storage.delete(name)
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {"database": _database, "broker": _broker, "media": _media}


@never_cache
@require_GET
def readyz(request) -> JsonResponse:
    answers, ready = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            state = check()
        except Exception as error:  # whatever stops a dependency from answering makes this process not ready
            state, ready = f"failed: {type(error).__name__}: {error}", False
        answers[name] = {"state": state, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": answers}, status=200 if ready else 503)
