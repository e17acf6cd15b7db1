"""URLs of the Backtest page and its actions."""

from django.urls import path

from backtests import views

app_name = "backtests"

urlpatterns = [
    path("", views.backtest_page, name="page"),
    path("start/", views.backtest_start, name="start"),
    path("compare/", views.compare, name="compare"),
    path("<int:pk>/", views.run_detail, name="run"),
    path("<int:pk>/progress/", views.run_progress, name="progress"),
    path("<int:pk>/cancel/", views.run_cancel, name="cancel"),
    path("<int:pk>/delete/", views.run_delete, name="delete"),
    path("<int:pk>/signals.csv", views.run_csv, name="csv"),
    path("<int:pk>/chart/", views.run_chart, name="chart"),
]
