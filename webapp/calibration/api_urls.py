"""Calibration's REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.calibration.api import jobs, marking, recounts, weights

urlpatterns = [
    path("cameras/<int:pk>/marked-frames/", marking.MarkedFrameListView.as_view(), name="api-marked-frames"),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/",
        marking.MarkedFrameDetailView.as_view(),
        name="api-marked-frame",
    ),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/image",
        marking.MarkedFrameImageView.as_view(),
        name="api-marked-frame-image",
    ),
    path(
        "cameras/<int:pk>/calibration-frames/",
        marking.CalibrationFramesView.as_view(),
        name="api-calibration-frames",
    ),
    path("cameras/<int:pk>/calibrations/", jobs.CalibrationListView.as_view(), name="api-calibrations"),
    path("cameras/<int:pk>/calibrations/<int:job>/", jobs.CalibrationDetailView.as_view(), name="api-calibration"),
    path("cameras/<int:pk>/adaptations/", jobs.AdaptationListView.as_view(), name="api-adaptations"),
    path("cameras/<int:pk>/adaptations/<int:job>/", jobs.AdaptationDetailView.as_view(), name="api-adaptation"),
    path("cameras/<int:pk>/weights/", weights.WeightsView.as_view(), name="api-weights"),
    path("cameras/<int:pk>/weights/activate/", weights.ActivateWeightsView.as_view(), name="api-weights-activate"),
    path("cameras/<int:pk>/weights/rollback/", weights.RollbackWeightsView.as_view(), name="api-weights-rollback"),
    path("cameras/<int:pk>/weights.onnx", weights.GatewayOnnxView.as_view(), name="api-weights-onnx"),
    path("cameras/<int:pk>/recounts/", recounts.RecountListView.as_view(), name="api-recounts"),
    path("cameras/<int:pk>/recounts/<int:job>/", recounts.RecountDetailView.as_view(), name="api-recount"),
    path("frames/<int:pk>/proposals/", marking.FrameProposalsView.as_view(), name="api-frame-proposals"),
]
