from django.contrib import admin

from webapp.notifications.models import Endpoint, Notification, NotificationRule


class RuleInline(admin.TabularInline):
    model = NotificationRule
    extra = 1


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "enabled"]
    list_filter = ["kind", "enabled"]
    inlines = [RuleInline]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The delivery log: every event sent or being sent, its attempts and the last error."""

    list_display = ["created_at", "event", "alert", "endpoint", "status", "attempts", "last_error", "delivered_at"]
    list_filter = ["status", "event", "endpoint"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
