from django.urls import path

from webapp.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report_list, name="list"),
    path("new/", views.request_report, name="request"),
    path("subscription/", views.subscription, name="subscription"),
    path("<int:pk>/", views.report_detail, name="detail"),
    path("<int:pk>/ask/", views.ask, name="ask"),
]
