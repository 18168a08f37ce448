from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "webapp.notifications"
    label = "notifications"

    def ready(self) -> None:
        from webapp.alerts.events import alerts_changed
        from webapp.ingest.events import count_committed
        from webapp.notifications.dispatch import notify_on_alert_changes
        from webapp.notifications.mqtt import publish_on_count

        alerts_changed.connect(notify_on_alert_changes, dispatch_uid="crowdscope-notify-alerts")
        count_committed.connect(publish_on_count, dispatch_uid="crowdscope-publish-counts")
