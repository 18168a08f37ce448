"""The Celery app: Redis broker, settings from Django's (`CELERY_*`), tasks in `workers.tasks`.

Run a worker with `celery -A workers.celery_app worker -Q count.csrnet-lite,default` and the schedule with
`celery -A workers.celery_app beat`.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("crowdscope")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
