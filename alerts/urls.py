"""URLs of the Alerts page and its actions."""

from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.alerts_page, name="list"),
    path("new/", views.destination_add, name="add"),
    path("log/", views.delivery_log, name="log"),
    path("failing/", views.failing_warning, name="failing"),
    path("<int:pk>/edit/", views.destination_edit, name="edit"),
    path("<int:pk>/test/", views.destination_test, name="test"),
    path("<int:pk>/enabled/", views.destination_enabled, name="enabled"),
    path("<int:pk>/remove/", views.destination_remove, name="remove"),
]
