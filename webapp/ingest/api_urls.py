"""Ingest's REST routes, under /api/v1/ (webapp.urls)."""

from django.urls import path

from webapp.ingest.api import posting, reading

urlpatterns = [
    path("frames/", posting.FrameUploadView.as_view(), name="api-frames"),
    path("edge-results/", posting.EdgeResultView.as_view(), name="api-edge-results"),
    path("frames/<int:pk>/", reading.FrameDetailView.as_view(), name="api-frame"),
    path("frames/<int:pk>/image", reading.FrameImageView.as_view(), name="api-frame-image"),
    path("frames/<int:pk>/heatmap.png", reading.FrameHeatmapView.as_view(), name="api-frame-heatmap"),
    path("frames/<int:pk>/density.npz", reading.FrameDensityView.as_view(), name="api-frame-density"),
    path("frames/<int:pk>/density.json", reading.FrameDensityValuesView.as_view(), name="api-frame-density-values"),
    path("cameras/<int:pk>/counts/", reading.CameraCountsView.as_view(), name="api-camera-counts"),
]
