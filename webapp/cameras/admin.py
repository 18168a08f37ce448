from django.contrib import admin, messages

from webapp.cameras.models import Camera, Gateway, Site, Zone


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone"]
    search_fields = ["name"]


class ZoneInline(admin.TabularInline):
    model = Zone
    extra = 0


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "place", "counting_model", "alert_threshold", "blur_heads"]
    list_filter = ["site", "counting_model", "blur_heads"]
    search_fields = ["name", "place"]
    inlines = [ZoneInline]


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    list_display = ["name", "token_prefix", "is_active", "last_seen_at"]
    readonly_fields = ["token_prefix", "created_at", "last_seen_at"]
    filter_horizontal = ["cameras"]

    def save_model(self, request, obj: Gateway, form, change: bool) -> None:
        if not change:
            token = obj.issue_secret()
            messages.warning(request, f"Token for {obj.name} (shown once, store it on the gateway): {token}")
        super().save_model(request, obj, form, change)
