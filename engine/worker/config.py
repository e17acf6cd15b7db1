"""What one engine run uses: settings row, environment and command-line overrides merged."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from django.core.exceptions import ObjectDoesNotExist

from engine.core.rules import RuleDef, RuleError, validate_definition
from engine.services import settings_get
from rules.models import Rule
from watchlists.models import Watchlist


class ConfigError(Exception):
    """The run can't start; the message tells the user what to fix."""


@dataclass(frozen=True)
class Overrides:
    """``runengine`` options that replace the stored settings for this worker process."""

    feed: str | None = None
    csv_path: str | None = None
    speed: float | None = None
    rule_id: int | None = None
    watchlist: str | None = None
    bar_seconds: int | None = None


@dataclass(frozen=True)
class RunConfig:
    rule: RuleDef
    rule_id: int
    rule_name: str
    watchlist_id: int | None
    watchlist_name: str
    symbols: tuple[str, ...]
    bar_seconds: int
    feed: str
    csv_path: str = ""
    speed: float = 1.0
    ib: dict = field(default_factory=dict)


def ib_connection(app_settings) -> dict:
    """IB host/port/client id: environment variables override the Settings page (DESIGN §5)."""
    return {
        "host": os.environ.get("SCALP_IB_HOST") or app_settings.ib_host,
        "port": int(os.environ.get("SCALP_IB_PORT") or app_settings.ib_port),
        "client_id": int(os.environ.get("SCALP_IB_CLIENT_ID") or app_settings.ib_client_id),
    }


def load_run_config(overrides: Overrides) -> RunConfig:
    """Read everything a run needs; raise ConfigError with an actionable sentence."""
    app_settings = settings_get()
    rule: Rule | None
    if overrides.rule_id is not None:
        try:
            rule = Rule.objects.get(pk=overrides.rule_id)
        except ObjectDoesNotExist:
            raise ConfigError(f"There is no rule with id {overrides.rule_id}.") from None
    else:
        rule = app_settings.active_rule
        if rule is None:
            raise ConfigError("No active rule: pick one on the dashboard before starting.")
    try:
        rule_def = validate_definition(rule.definition)
    except RuleError as err:
        raise ConfigError(f"The rule “{rule.name}” is invalid: {err}") from None

    if overrides.watchlist:
        watchlist = Watchlist.objects.filter(name=overrides.watchlist).first()
        if watchlist is None:
            raise ConfigError(f"There is no watchlist named “{overrides.watchlist}”.")
    else:
        watchlist = Watchlist.objects.filter(is_active=True).first()
    feed = overrides.feed or app_settings.feed
    csv_path = overrides.csv_path or app_settings.csv_path
    symbols = tuple(watchlist.symbols) if watchlist is not None else ()
    if feed != "csv":
        if watchlist is None:
            raise ConfigError("No active watchlist: create or activate one before starting.")
        if not symbols:
            raise ConfigError(f"The watchlist “{watchlist.name}” has no symbols: add up to 5.")
    elif not csv_path:
        raise ConfigError("The csv feed needs a file: set it on the Settings page or --csv.")
    elif not os.path.isfile(csv_path):
        raise ConfigError(f"The CSV file {csv_path} does not exist.")
    bar_seconds = overrides.bar_seconds or app_settings.bar_seconds
    if bar_seconds not in (5, 60):
        raise ConfigError(f"Bar size must be 5 or 60 seconds, not {bar_seconds}.")
    return RunConfig(
        rule=rule_def,
        rule_id=rule.pk,
        rule_name=rule.name,
        watchlist_id=watchlist.pk if watchlist is not None else None,
        watchlist_name=watchlist.name if watchlist is not None else "",
        symbols=symbols,
        bar_seconds=bar_seconds,
        feed=feed,
        csv_path=csv_path,
        speed=overrides.speed if overrides.speed is not None else 1.0,
        ib=ib_connection(app_settings),
    )
