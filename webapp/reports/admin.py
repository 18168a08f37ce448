from django.contrib import admin

from webapp.reports.models import Delivery, Report, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "send_at", "timezone", "active"]
    list_filter = ["active", "timezone"]
    filter_horizontal = ["cameras", "sites"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["day", "subscription", "status", "attempts", "recipient", "sent_at", "error"]
    list_filter = ["status", "day"]
    readonly_fields = ["subscription", "day", "report", "recipient", "message_id", "sent_at", "claimed_at", "attempts"]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["period_start", "timezone", "status", "facts_told", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["told", "events", "facts", "model_reply", "history_cache"]

    @admin.display(description="facts told")
    def facts_told(self, report: Report) -> str:
        return f"{len(report.told)} of {len(report.events)}"
