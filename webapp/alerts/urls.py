from django.urls import path

from webapp.alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_list, name="list"),
    path("<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
]
