"""Ingest's REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.ingest import api

urlpatterns = [
    path("frames/", api.FrameUploadView.as_view(), name="api-frames"),
    path("edge-results/", api.EdgeResultView.as_view(), name="api-edge-results"),
    path("frames/<int:pk>/", api.FrameDetailView.as_view(), name="api-frame"),
    path("frames/<int:pk>/image", api.FrameImageView.as_view(), name="api-frame-image"),
    path("frames/<int:pk>/heatmap.png", api.FrameHeatmapView.as_view(), name="api-frame-heatmap"),
    path("frames/<int:pk>/density.npz", api.FrameDensityView.as_view(), name="api-frame-density"),
    path("frames/<int:pk>/density.json", api.FrameDensityValuesView.as_view(), name="api-frame-density-values"),
    path("cameras/<int:pk>/counts/", api.CameraCountsView.as_view(), name="api-camera-counts"),
]
