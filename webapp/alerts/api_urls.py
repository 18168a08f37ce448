"""The alerts' REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.alerts import api

urlpatterns = [
    path("alerts/", api.AlertListView.as_view(), name="api-alerts"),
]
