from django.contrib import admin

from webapp.ingest.models import Frame, Result, ZoneCount


@admin.register(Frame)
class FrameAdmin(admin.ModelAdmin):
    list_display = ["pk", "camera", "captured_at", "status", "error"]
    list_filter = ["status", "camera"]
    date_hierarchy = "captured_at"
    readonly_fields = [field.name for field in Frame._meta.fields]


class ZoneCountInline(admin.TabularInline):
    model = ZoneCount
    extra = 0
    readonly_fields = ["zone", "zone_name", "count"]


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ["frame", "count", "model_name", "model_version", "inference_ms"]
    readonly_fields = [field.name for field in Result._meta.fields]
    inlines = [ZoneCountInline]
