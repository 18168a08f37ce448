"""The Celery app and its tasks (the platform issue): thin wrappers that load data through the Django models and
call the `counting` and `llm_reports` libraries."""
