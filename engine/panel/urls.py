"""URLs of the control panel: the dashboard, the Settings page, and ``GET /api/engine/``."""

from django.urls import path

from engine.panel import dashboard as views
from engine.panel import settings_page as settings_views
from signals import api

app_name = "engine"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("engine/status/", views.status, name="status"),
    path("engine/controls/", views.controls, name="controls"),
    path("engine/start/", views.start, name="start"),
    path("engine/stop/", views.stop, name="stop"),
    path("engine/choose/", views.choose, name="choose"),
    path("settings/", settings_views.settings_page, name="settings"),
    path(
        "settings/test-connection/",
        settings_views.settings_test_connection,
        name="settings-test-connection",
    ),
    path("settings/rotate-token/", settings_views.settings_rotate_token, name="settings-rotate"),
    path("api/engine/", api.api_engine, name="api_engine"),
]
