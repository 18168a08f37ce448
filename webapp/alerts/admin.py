from django.contrib import admin

from webapp.alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["raised_at", "camera", "zone_name", "kind", "value", "threshold", "state", "acknowledged_by"]
    list_filter = ["state", "kind", "camera"]
    readonly_fields = ["frame", "raised_at", "ended_at", "acknowledged_at"]
