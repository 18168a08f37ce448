from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "webapp.alerts"
    label = "alerts"

    def ready(self) -> None:
        from webapp.alerts.rules import raise_alerts_on_count
        from webapp.ingest.events import frame_counted

        frame_counted.connect(raise_alerts_on_count, dispatch_uid="crowdscope-raise-alerts")
