"""Calibration's REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.calibration import api

urlpatterns = [
    path("cameras/<int:pk>/marked-frames/", api.MarkedFrameListView.as_view(), name="api-marked-frames"),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/",
        api.MarkedFrameDetailView.as_view(),
        name="api-marked-frame",
    ),
    path(
        "cameras/<int:pk>/marked-frames/<int:mid>/image",
        api.MarkedFrameImageView.as_view(),
        name="api-marked-frame-image",
    ),
    path(
        "cameras/<int:pk>/calibration-frames/",
        api.CalibrationFramesView.as_view(),
        name="api-calibration-frames",
    ),
    path("cameras/<int:pk>/calibrations/", api.CalibrationListView.as_view(), name="api-calibrations"),
    path("cameras/<int:pk>/calibrations/<int:job>/", api.CalibrationDetailView.as_view(), name="api-calibration"),
    path("cameras/<int:pk>/adaptations/", api.AdaptationListView.as_view(), name="api-adaptations"),
    path("cameras/<int:pk>/adaptations/<int:job>/", api.AdaptationDetailView.as_view(), name="api-adaptation"),
    path("cameras/<int:pk>/weights/", api.WeightsView.as_view(), name="api-weights"),
    path("cameras/<int:pk>/weights/activate/", api.ActivateWeightsView.as_view(), name="api-weights-activate"),
    path("cameras/<int:pk>/weights/rollback/", api.RollbackWeightsView.as_view(), name="api-weights-rollback"),
    path("cameras/<int:pk>/weights.onnx", api.GatewayOnnxView.as_view(), name="api-weights-onnx"),
    path("cameras/<int:pk>/recounts/", api.RecountListView.as_view(), name="api-recounts"),
    path("cameras/<int:pk>/recounts/<int:job>/", api.RecountDetailView.as_view(), name="api-recount"),
    path("frames/<int:pk>/proposals/", api.FrameProposalsView.as_view(), name="api-frame-proposals"),
]
