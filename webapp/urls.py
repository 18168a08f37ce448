from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from webapp.alerts import views as alert_views
from webapp.dashboard import api as dashboard_api
from webapp.ingest import api, gateway_api

api_v1 = [
    path("frames/", gateway_api.FrameUploadView.as_view(), name="api-frames"),
    path("edge-results/", gateway_api.EdgeResultView.as_view(), name="api-edge-results"),
    path("frames/<int:pk>/", api.FrameDetailView.as_view(), name="api-frame"),
    path("frames/<int:pk>/image", api.FrameImageView.as_view(), name="api-frame-image"),
    path("frames/<int:pk>/heatmap.png", api.FrameHeatmapView.as_view(), name="api-frame-heatmap"),
    path("frames/<int:pk>/density.npz", api.FrameDensityView.as_view(), name="api-frame-density"),
    path("frames/<int:pk>/density.json", api.FrameDensityValuesView.as_view(), name="api-frame-density-values"),
    path("cameras/<int:pk>/counts/", api.CameraCountsView.as_view(), name="api-camera-counts"),
    path("alerts/", alert_views.AlertListView.as_view(), name="api-alerts"),
    path("sites/", dashboard_api.SiteListView.as_view(), name="api-sites"),
    path("cameras/", dashboard_api.CameraListView.as_view(), name="api-cameras"),
    path("", include("webapp.calibration.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/oidc/", include("webapp.accounts.oidc")),
    path("api/v1/", include(api_v1)),
    # The API's description, for those who may read the API: people with a role and API keys.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[dashboard_api.IsReader]), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[dashboard_api.IsReader]),
        name="api-docs",
    ),
    path("reports/", include("webapp.reports.urls")),
    path("alerts/", include("webapp.alerts.urls")),
    path("", include("webapp.calibration.page_urls")),
    path("", include("webapp.dashboard.urls")),
]
