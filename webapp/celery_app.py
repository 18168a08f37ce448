"""The project's Celery app, configured from the CELERY_* settings, and `enqueue`: how the web side hands work to the
workers by task name (`webapp.queues`), without importing them.

The workers run this same app (`celery -A workers.celery_app worker`) and register their tasks on it. Celery imports
the task modules named in the CELERY_IMPORTS setting: a worker when it starts, any other process the first time it
must run a task itself (CELERY_TASK_ALWAYS_EAGER, as the tests and the demo's in-process mode set).
"""

from __future__ import annotations

import os
from contextvars import Token

from celery import Celery, signals

from webapp.request_ids import NO_REQUEST, request_id

# Celery sets up Django in its workers and closes their database connections around tasks only when this names the
# settings as the app is created.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("crowdscope")
app.config_from_object("django.conf:settings", namespace="CELERY")


def enqueue(task_name: str, *args: object, queue: str | None = None) -> None:
    """Send the task registered as `task_name` with `args` to `queue` (None: the queue CELERY_TASK_ROUTES names for
    it, else CELERY_TASK_DEFAULT_QUEUE). Raises what the broker client raises when the message cannot be sent.

    With CELERY_TASK_ALWAYS_EAGER, which `send_task` alone would ignore, the task runs in this process before this
    returns, its errors kept in its result as Celery's eager mode keeps them; then celery.exceptions.NotRegistered
    when no module of CELERY_IMPORTS defines `task_name`.
    """
    headers = {} if request_id.get() == NO_REQUEST else {"request_id": request_id.get()}
    if app.conf.task_always_eager:
        if task_name not in app.tasks:
            # The modules a worker imports as it starts. Not through import_default_modules: its signal would set up
            # Django again in this process, which has it already, and replace the logging handlers on the way.
            for module in app.conf.imports:
                app.loader.import_task_module(module)
        app.tasks[task_name].apply_async(args=args, queue=queue, headers=headers)
    else:
        app.send_task(task_name, args=args, queue=queue, headers=headers)


_outer_request_ids: dict[str, Token] = {}


@signals.task_prerun.connect
def _log_under_the_request(task_id: str, task, **_) -> None:
    """A task's log lines carry the id of the request that sent it, else the task's own id."""
    _outer_request_ids[task_id] = request_id.set((task.request.headers or {}).get("request_id") or task_id)


@signals.task_postrun.connect
def _end_the_request(task_id: str, **_) -> None:
    """Back to what was logged before: nothing in a worker, the request that ran the task in-process otherwise."""
    if token := _outer_request_ids.pop(task_id, None):
        request_id.reset(token)
