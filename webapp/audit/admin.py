"""The audit log in the admin: read by superusers and the admin role, changed by nobody (the log cannot be edited from
the UI: adding, changing and deleting entries are refused to everyone), exported as CSV."""

from __future__ import annotations

from auditlog import get_logentry_model
from auditlog.admin import LogEntryAdmin
from auditlog.filters import ResourceTypeFilter
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path

from webapp.audit.export import PeriodError, csv_lines, entries_between, period_bound

LogEntry = get_logentry_model()

admin.site.unregister(LogEntry)  # django-auditlog's own registration, replaced below


@admin.register(LogEntry)
class AuditLogAdmin(LogEntryAdmin):
    list_display = ["created", "resource_url", "action", "msg_short", "user_url", "remote_addr"]
    list_filter = ["action", ResourceTypeFilter]
    search_fields = [*LogEntryAdmin.search_fields, "remote_addr"]
    readonly_fields = ["created", "resource_url", "action", "user_url", "remote_addr", "msg", "additional_data"]
    fieldsets = [
        (None, {"fields": ["created", "user_url", "remote_addr", "resource_url"]}),
        ("Changes", {"fields": ["action", "msg", "additional_data"]}),
    ]
    change_list_template = "audit/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self) -> list:
        export = path("export.csv", self.admin_site.admin_view(self.export_csv), name="auditlog_logentry_export")
        return [export, *super().get_urls()]

    def export_csv(self, request: HttpRequest) -> HttpResponse:
        """The entries of a period as CSV (webapp.audit.export), for those who may read the log; 400 with the reason
        for a `since` or `until` that is no date or time."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            since = period_bound("since", request.GET.get("since", ""), is_end=False)
            until = period_bound("until", request.GET.get("until", ""), is_end=True)
        except PeriodError as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain; charset=utf-8")
        entries = entries_between(since, until).iterator(chunk_size=2000)
        response = StreamingHttpResponse(csv_lines(entries), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response
