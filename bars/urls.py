"""URLs of the bars app: the chart history API and the chart around a signal."""

from django.urls import path

from bars import api, views

app_name = "bars"

urlpatterns = [
    path("api/", api.api_bars, name="api"),
    path("signal/<int:signal_id>/", views.signal_chart, name="signal_chart"),
]
