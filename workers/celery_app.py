"""The workers' Celery app: the project's app (webapp.celery_app, configured from Django's CELERY_* settings), which
imports the tasks of `workers.tasks` (the CELERY_IMPORTS setting) as a worker starts.

Run a worker with `celery -A workers.celery_app worker -Q count.csrnet-lite,default` and the schedule with
`celery -A workers.celery_app beat`.
"""

from webapp.celery_app import app

__all__ = ["app"]
