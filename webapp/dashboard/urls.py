from django.urls import path

from webapp.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.camera_list, name="cameras"),
    path("cameras/<int:pk>/", views.camera_detail, name="camera"),
]
