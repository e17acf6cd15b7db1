"""App config for signals (the trading kind, not Django signals)."""

from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    verbose_name = "Signals"
