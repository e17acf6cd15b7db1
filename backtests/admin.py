"""Admin for backtest runs: read-only (the Backtest page and the worker write them)."""

from django.contrib import admin

from backtests.models import BacktestRun
from engine.admin import ReadOnlyAdmin


@admin.register(BacktestRun)
class BacktestRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "state", "bar_seconds", "signal_count", "created_at")
    list_filter = ("state", "source")
