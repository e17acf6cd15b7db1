"""URLs of the Backtest page and its actions."""

from django.urls import path  # noqa: F401

app_name = "backtests"

urlpatterns: list = []
