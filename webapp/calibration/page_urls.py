"""Calibration pages (the marking page); the REST API is in api_urls.py."""

from django.urls import path

from webapp.calibration import pages

app_name = "calibration"

urlpatterns = [
    path("cameras/<int:pk>/calibrate/", pages.calibration_page, name="calibrate"),
]
