"""App config for alerts: destinations (webhook, Telegram, Discord) and their outbox."""

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
