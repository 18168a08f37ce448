"""The Django project: settings, URLs and (with the platform issue) the apps cameras, ingest and dashboard."""
