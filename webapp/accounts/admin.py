from django.contrib import admin, messages

from webapp.accounts.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "is_active", "created_at", "last_used_at"]
    readonly_fields = ["key_prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if not change:
            key = obj.issue_key()
            messages.warning(request, f"Key for {obj.name} (shown once, store it where it is used): {key}")
        super().save_model(request, obj, form, change)
