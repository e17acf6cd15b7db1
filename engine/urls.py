"""URLs of the engine pages."""

from django.urls import path

from engine import views

app_name = "engine"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("api/engine/", views.api_engine, name="api_engine"),
]
