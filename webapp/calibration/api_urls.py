"""Calibration's REST routes, included in webapp.urls' api_v1 list (under /api/v1/)."""

from django.urls import path

from webapp.calibration import jobs_api, marking_api

urlpatterns = [
    path("cameras/<int:pk>/marked-frames/", marking_api.MarkedFrameListView.as_view(), name="api-marked-frames"),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/",
        marking_api.MarkedFrameDetailView.as_view(),
        name="api-marked-frame",
    ),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/image",
        marking_api.MarkedFrameImageView.as_view(),
        name="api-marked-frame-image",
    ),
    path(
        "cameras/<int:pk>/calibration-frames/",
        marking_api.CalibrationFramesView.as_view(),
        name="api-calibration-frames",
    ),
    path("cameras/<int:pk>/calibrations/", jobs_api.CalibrationListView.as_view(), name="api-calibrations"),
    path("cameras/<int:pk>/calibrations/<int:job>/", jobs_api.CalibrationDetailView.as_view(), name="api-calibration"),
    path("cameras/<int:pk>/adaptations/", jobs_api.AdaptationListView.as_view(), name="api-adaptations"),
    path("cameras/<int:pk>/adaptations/<int:job>/", jobs_api.AdaptationDetailView.as_view(), name="api-adaptation"),
    path("cameras/<int:pk>/weights/", jobs_api.WeightsView.as_view(), name="api-weights"),
    path("cameras/<int:pk>/weights/activate/", jobs_api.ActivateWeightsView.as_view(), name="api-weights-activate"),
    path("cameras/<int:pk>/weights/rollback/", jobs_api.RollbackWeightsView.as_view(), name="api-weights-rollback"),
    path("cameras/<int:pk>/weights.onnx", jobs_api.GatewayOnnxView.as_view(), name="api-weights-onnx"),
    path("cameras/<int:pk>/recounts/", jobs_api.RecountListView.as_view(), name="api-recounts"),
    path("cameras/<int:pk>/recounts/<int:job>/", jobs_api.RecountDetailView.as_view(), name="api-recount"),
    path("frames/<int:pk>/proposals/", marking_api.FrameProposalsView.as_view(), name="api-frame-proposals"),
]
