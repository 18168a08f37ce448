from django.contrib import admin

from webapp.calibration.models import AdaptationJob, CalibrationJob, MarkedFrame, RecountJob, WeightsVersion


@admin.register(MarkedFrame)
class MarkedFrameAdmin(admin.ModelAdmin):
    list_display = ["pk", "camera", "frame", "count", "marked_by", "marked_at"]
    list_filter = ["camera"]
    raw_id_fields = ["frame"]
    readonly_fields = ["created_at"]


@admin.register(WeightsVersion)
class WeightsVersionAdmin(admin.ModelAdmin):
    list_display = ["camera", "number", "kind", "arch", "summary"]
    list_filter = ["kind", "camera"]
    # The figures are what the guard or the adaptation measured: a record, not a setting.
    readonly_fields = [
        "kind",
        "held_out_mae_before",
        "held_out_mae_after",
        "held_out_frames",
        "folds",
        "adapted_frames",
        "frames_from",
        "frames_to",
        "mean_count_before",
        "mean_count_after",
        "rule",
        "novelty",
        "strength",
        "created_at",
    ]
    filter_horizontal = ["frames_used"]


@admin.register(CalibrationJob)
class CalibrationJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "camera", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "camera"]
    readonly_fields = ["created_at", "started_at", "finished_at", "updated_at"]


@admin.register(AdaptationJob)
class AdaptationJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "camera", "status", "automatic", "frames", "progress", "created_at", "finished_at"]
    list_filter = ["status", "automatic", "camera"]
    readonly_fields = ["created_at", "started_at", "finished_at", "updated_at"]


@admin.register(RecountJob)
class RecountJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "camera", "period_from", "period_to", "status", "frames"]
    list_filter = ["status", "camera"]
