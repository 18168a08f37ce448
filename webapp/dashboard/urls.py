from django.urls import path

from webapp.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.fleet_overview, name="overview"),
    path("map/", views.site_map, name="map"),
    path("map/data.json", views.map_data, name="map-data"),
    path("sites/<int:pk>/", views.site_analytics, name="site"),
    path("sites/<int:pk>/plan", views.site_plan, name="site-plan"),
    path("cameras/<int:pk>/", views.camera_detail, name="camera"),
    path("cameras/<int:pk>/frames.json", views.camera_frames, name="camera-frames"),
    path("cameras/<int:pk>/zones/", views.zone_list, name="zones"),
    path("cameras/<int:pk>/zones/new/", views.zone_edit, name="zone-new"),
    path("cameras/<int:pk>/zones/<int:zone_id>/", views.zone_edit, name="zone-edit"),
    path("cameras/<int:pk>/zones/<int:zone_id>/delete/", views.zone_delete, name="zone-delete"),
]
