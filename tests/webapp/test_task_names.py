"""The web side sends tasks by name (webapp.queues) without importing the workers: every name must be a task the
workers register, and the settings must route it to its queue."""

import pytest

import workers.tasks  # noqa: F401  (registers the tasks on the app)
from webapp import queues
from webapp.celery_app import app

# Every task name the web side may send: each constant of webapp.queues that names one.
TASK_NAMES = [value for value in vars(queues).values() if isinstance(value, str) and value.startswith("workers.tasks.")]


@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_every_task_name_is_a_registered_task(task_name):
    assert len(TASK_NAMES) >= 15
    assert task_name in app.tasks


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        (queues.GENERATE_REPORT, queues.REPORTS_QUEUE),
        (queues.ANSWER_QUESTION, queues.REPORTS_QUEUE),
        (queues.SEND_REPORT_EMAIL, queues.REPORTS_QUEUE),
        (queues.CALIBRATE_CAMERA, queues.CALIBRATE_QUEUE),
        (queues.RECOUNT_PERIOD, queues.CALIBRATE_QUEUE),
        (queues.ADAPT_CAMERA, queues.CALIBRATE_QUEUE),
        (queues.ADAPT_NEW_CAMERAS, queues.DEFAULT_QUEUE),
        (queues.REQUEUE_STALE_FRAMES, queues.DEFAULT_QUEUE),
        (queues.SEND_DUE_REPORTS, queues.DEFAULT_QUEUE),
    ],
)
def test_the_settings_route_each_task_to_its_queue(task_name, queue):
    assert app.amqp.router.route({}, task_name)["queue"].name == queue
