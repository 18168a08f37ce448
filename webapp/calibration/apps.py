from django.apps import AppConfig


class CalibrationAppConfig(AppConfig):
    name = "webapp.calibration"
    verbose_name = "calibration"
