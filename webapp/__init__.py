"""The Django project: settings, URLs and the apps by domain (cameras, ingest, alerts, dashboard, reports, ...)."""
