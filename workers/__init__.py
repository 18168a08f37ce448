"""The Celery tasks, run by `celery -A workers.celery_app worker`: thin wrappers that load data through the Django
models and call the `counting` and `llm_reports` libraries. Dependencies point one way: this package imports
`webapp`, never the reverse; the web side sends these tasks by name (webapp.queues)."""
