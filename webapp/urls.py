from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from webapp.accounts.permissions import IsReader

# Each app routes its own API (its api_urls.py), all under /api/v1/.
api_v1 = [
    path("", include("webapp.ingest.api_urls")),
    path("", include("webapp.alerts.api_urls")),
    path("", include("webapp.dashboard.api_urls")),
    path("", include("webapp.calibration.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/oidc/", include("webapp.accounts.oidc")),
    path("api/v1/", include(api_v1)),
    # The API's description, for those who may read the API: people with a role and API keys.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsReader]), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[IsReader]),
        name="api-docs",
    ),
    path("reports/", include("webapp.reports.urls")),
    path("alerts/", include("webapp.alerts.urls")),
    path("", include("webapp.calibration.urls")),
    path("", include("webapp.dashboard.urls")),
]
