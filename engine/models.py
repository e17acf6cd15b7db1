"""Settings (one row) and the engine's state (one row) shared by the web and the worker."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from engine.core.instruments import DEFAULT_ROLL_DAYS

MAX_ROLL_DAYS = 30


def new_token() -> str:
    # Hex: never starts with "-", so it is safe as a command-line argument (--token TOKEN).
    return secrets.token_hex(32)


class AppSettings(models.Model):
    """The single settings row. Environment variables override it (see ``engine.worker.config``)."""

    class Feed(models.TextChoices):
        IB = "ib", "Interactive Brokers (TWS / IB Gateway)"
        DEMO = "demo", "Demo (synthetic market)"
        CSV = "csv", "CSV file replay"

    class BarSize(models.IntegerChoices):
        FIVE_SECONDS = 5, "5 seconds"
        ONE_MINUTE = 60, "1 minute"

    ib_host = models.CharField("IB host", max_length=255, default="127.0.0.1")
    ib_port = models.PositiveIntegerField("IB port", default=7497)
    ib_client_id = models.PositiveIntegerField("IB client id", default=17)
    feed = models.CharField(max_length=10, choices=Feed.choices, default=Feed.DEMO)
    csv_path = models.CharField("CSV file", max_length=500, blank=True)
    bar_seconds = models.PositiveSmallIntegerField(
        "bar size", choices=BarSize.choices, default=BarSize.FIVE_SECONDS
    )
    use_rth = models.BooleanField(
        "regular trading hours only",
        default=False,
        help_text="IB bars and history of each instrument's liquid (regular) hours only.",
    )
    roll_days = models.PositiveSmallIntegerField(
        "futures roll window (days)",
        default=DEFAULT_ROLL_DAYS,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_ROLL_DAYS)],
        help_text="A future runs on the nearest month that does not expire within this many days.",
    )
    feed_token = models.CharField(max_length=64, default=new_token)
    engine_token = models.CharField(max_length=64, default=new_token)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "settings"
        verbose_name_plural = "settings"

    def __str__(self) -> str:
        return "Settings"


class EngineState(models.Model):
    """The single engine-state row: what the user asked for and what the worker reports."""

    class Desired(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    class State(models.TextChoices):
        OFFLINE = "offline", "Offline"
        IDLE = "idle", "Idle"
        CONNECTING = "connecting", "Connecting"
        WARMING_UP = "warming_up", "Warming up"
        RUNNING = "running", "Running"
        RECONNECTING = "reconnecting", "Reconnecting"
        STOPPING = "stopping", "Stopping"
        ERROR = "error", "Error"

    desired = models.CharField(max_length=10, choices=Desired.choices, default=Desired.STOPPED)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IDLE)
    message = models.TextField(blank=True, default="")
    heartbeat = models.DateTimeField(null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    # What the current run locked (DESIGN §4): set at start, cleared at stop.
    run_rules = models.JSONField(default=list, blank=True, help_text="The run's rule ids.")
    run_watchlist = models.ForeignKey(
        "watchlists.Watchlist", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    run_started = models.DateTimeField(null=True, blank=True)
    last_bar_time = models.DateTimeField(null=True, blank=True)
    # Per watchlist item, what the run's feed resolved and its market (DESIGN §7.1):
    # {"ES:FUT:CME": {"contract": {...} | None, "open": bool | None, "market": "trading (…)"}}
    symbols = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "engine state"
        verbose_name_plural = "engine state"

    def __str__(self) -> str:
        return f"Engine: {self.effective_state}"

    @property
    def is_alive(self) -> bool:
        if self.heartbeat is None:
            return False
        stale = timedelta(seconds=settings.SCALP_HEARTBEAT_STALE_SECONDS)
        return timezone.now() - self.heartbeat <= stale

    @property
    def effective_state(self) -> str:
        """The state to show: ``offline`` when the worker's heartbeat is stale."""
        return self.state if self.is_alive else self.State.OFFLINE

    @property
    def effective_state_label(self) -> str:
        return self.State(self.effective_state).label

    @property
    def run_rule_ids(self) -> list[int]:
        """The ids of the rules the current run holds (empty: no run)."""
        return [int(pk) for pk in self.run_rules or []]

    @property
    def run_rule_id(self) -> int | None:
        """The run's first rule id (the seed's single-rule field; kept for old readers)."""
        ids = self.run_rule_ids
        return ids[0] if ids else None

    @property
    def is_locked(self) -> bool:
        """A live run holds the active rules and watchlist."""
        return self.is_alive and (bool(self.run_rule_ids) or self.run_watchlist_id is not None)
