"""Calibration pages (the marking page); the REST API is in api_urls.py."""

from django.urls import path

from webapp.calibration import views

app_name = "calibration"

urlpatterns = [
    path("cameras/<int:pk>/calibrate/", views.calibration_page, name="calibrate"),
]
