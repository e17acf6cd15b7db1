"""Settings (one row) and the engine's state (one row) shared by the web and the worker."""

import re
import secrets
import zoneinfo
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from bars.models import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS
from engine.core.inputs import shown
from engine.core.instruments import DEFAULT_ROLL_DAYS
from engine.core.outcomes import DEFAULT_HORIZONS, HorizonError, format_horizons, parse_horizons

MAX_ROLL_DAYS = 30
DEFAULT_RESTART_TIME = "23:45"  # IB Gateway's and TWS's factory auto-restart time
DEFAULT_RESTART_ZONE = "America/New_York"
MAX_ZONE_CHARS = 64
# ASCII digits only: "²3:45" or "２３:４５" must not read as a time.
_CLOCK_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_ZONE_RE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


def restart_time_clean(text: str) -> str:
    """The daily restart time as ``HH:MM`` (00:00–23:59; ``9:05`` becomes ``09:05``), or ""
    (unknown). Raises ValidationError with one sentence."""
    value = text.strip()
    if not value:
        return ""
    match = _CLOCK_RE.fullmatch(value)
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return f"{int(match[1]):02d}:{match[2]}"
    raise ValidationError(
        f"“{shown(value)}” is not a time of day: type HH:MM from 00:00 to 23:59, e.g. 23:45 "
        "(or leave it empty if you don't know it)."
    )


@cache
def _zone_names() -> dict[str, str]:
    # Read once (about 0.1 s): the zones installed with Python's tzdata or the system's.
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def restart_zone_clean(text: str) -> str:
    """An IANA time zone name, spelled as the time zone database spells it
    (``america/new_york`` becomes ``America/New_York``). Raises ValidationError with one
    sentence; never opens a path built from ``text`` that is not a known zone."""
    value = text.strip()
    if not value:
        raise ValidationError("Type the time zone of the restart time, e.g. America/New_York.")
    if len(value) <= MAX_ZONE_CHARS and _ZONE_RE.fullmatch(value):
        name = _zone_names().get(value.lower())
        if name is not None:
            return name
    raise ValidationError(
        f"“{shown(value)}” is not a time zone: type a name such as America/New_York, "
        "America/Chicago, Europe/London or UTC."
    )


def validate_restart_time(value: str) -> None:
    restart_time_clean(value)


def validate_restart_zone(value: str) -> None:
    restart_zone_clean(value)


def horizons_clean(text: str) -> str:
    """Outcome horizons in their canonical form (``1M, 5m,15m`` → ``1m,5m,15m``). Raises
    ValidationError with one sentence."""
    try:
        return format_horizons(parse_horizons(text))
    except HorizonError as err:
        raise ValidationError(f"{str(err)[:1].upper()}{str(err)[1:]}.") from None


def validate_horizons(value: str) -> None:
    horizons_clean(value)


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
    ib_next_client_id = models.BooleanField(
        "use the next client id when taken",
        default=False,
        help_text="If the client id is taken, use the next free one",
    )
    ib_restart_time = models.CharField(
        "IB daily restart time",
        max_length=5,
        default=DEFAULT_RESTART_TIME,
        blank=True,
        validators=[validate_restart_time],
        help_text="HH:MM when TWS / IB Gateway restarts itself each day (empty: unknown).",
    )
    ib_restart_zone = models.CharField(
        "IB restart time zone",
        max_length=MAX_ZONE_CHARS,
        default=DEFAULT_RESTART_ZONE,
        validators=[validate_restart_zone],
        help_text="The time zone of the restart time, e.g. America/New_York.",
    )
    bar_retention_days = models.PositiveSmallIntegerField(
        "keep bars (days)",
        default=DEFAULT_RETENTION_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="Stored bars older than this are deleted once a day.",
    )
    outcome_horizons = models.CharField(
        "outcome horizons",
        max_length=60,
        default=DEFAULT_HORIZONS,
        validators=[validate_horizons],
        help_text="When to measure what happened after a signal, e.g. 1m,5m,15m.",
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


class EngineEvent(models.Model):
    """One line of the engine's story: a state it reported and its sentence (the newest
    :data:`engine.services.ENGINE_EVENTS_KEPT` are kept)."""

    time = models.DateTimeField(default=timezone.now, db_index=True)
    state = models.CharField(max_length=20, choices=EngineState.State.choices)
    message = models.TextField(blank=True, default="")
    symbol = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["-id"]  # the order the worker reported in (times can tie)
        verbose_name = "engine event"
        verbose_name_plural = "engine events"

    def __str__(self) -> str:
        return f"{self.time:%H:%M:%S} {self.message or self.get_state_display()}"
