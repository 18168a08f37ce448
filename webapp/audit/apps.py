from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "webapp.audit"
    label = "audit"
    verbose_name = "audit log"

    def ready(self) -> None:
        from webapp.audit.registration import register_audited_models

        register_audited_models()
