"""App config for bars: the closed bars the worker took in, kept for charts, warm-up,
outcomes and backtests (DESIGN §7.3)."""

from django.apps import AppConfig


class BarsConfig(AppConfig):
    name = "bars"
    verbose_name = "Bars"
