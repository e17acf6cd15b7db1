"""URLs of the signals app."""

from django.urls import path

from signals import api, views

app_name = "signals"

urlpatterns = [
    path("signals/", views.history, name="history"),
    path("signals/export.csv", views.export_csv, name="export"),
    path("api/signals/", api.api_signals, name="api_signals"),
]
