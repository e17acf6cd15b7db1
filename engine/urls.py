"""URLs of the engine pages."""

from django.urls import path

from engine import settings_views, views

app_name = "engine"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("api/engine/", views.api_engine, name="api_engine"),
]
