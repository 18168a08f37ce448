"""The dashboard's REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.dashboard import api

urlpatterns = [
    path("sites/", api.SiteListView.as_view(), name="api-sites"),
    path("cameras/", api.CameraListView.as_view(), name="api-cameras"),
]
