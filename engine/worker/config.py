"""What one engine run uses: settings row, environment and command-line overrides merged."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bars.models import DEFAULT_RETENTION_DAYS
from engine.core.outcomes import DEFAULT_HORIZONS, HorizonError, parse_horizons
from engine.core.rules import RuleDef, RuleError, timeframe_problem, validate_definition
from engine.services import settings_get
from rules.models import Rule
from rules.services import MAX_ACTIVE_RULES, rules_active
from watchlists.models import Watchlist


class ConfigError(Exception):
    """The run can't start; the message tells the user what to fix."""


@dataclass(frozen=True)
class Overrides:
    """``runengine`` options that replace the stored settings for this worker process."""

    feed: str | None = None
    csv_path: str | None = None
    speed: float | None = None
    rule_ids: tuple[int, ...] | None = None  # instead of the active rules
    watchlist: str | None = None
    bar_seconds: int | None = None


@dataclass(frozen=True)
class RunRule:
    """One rule of a run: its database id, its name and its validated definition."""

    id: int
    name: str
    rule: RuleDef


@dataclass(frozen=True)
class RunConfig:
    rules: tuple[RunRule, ...]  # in id order (the active set's order) or as --rule named them
    watchlist_id: int | None
    watchlist_name: str
    symbols: tuple[str, ...]
    bar_seconds: int
    feed: str
    csv_path: str = ""
    speed: float = 1.0
    ib: dict = field(default_factory=dict)
    # DESIGN §7.3: outcome horizons (seconds) and how long stored bars are kept (days)
    horizons: tuple[int, ...] = (60, 300, 900)
    retention_days: int = DEFAULT_RETENTION_DAYS

    @property
    def rule_ids(self) -> list[int]:
        return [run_rule.id for run_rule in self.rules]

    @property
    def warmup_bars(self) -> int:
        """Run bars of history the feed sends first: what the hungriest rule needs."""
        return max(run_rule.rule.warmup_bars(self.bar_seconds) for run_rule in self.rules)

    def describe_rules(self) -> str:
        """``rule “A”`` or ``rules “A”, “B”`` for the status sentence."""
        names = ", ".join(f"“{run_rule.name}”" for run_rule in self.rules)
        return f"rule {names}" if len(self.rules) == 1 else f"rules {names}"


def ib_connection(app_settings) -> dict:
    """IB host/port/client id (environment variables override the Settings page, DESIGN §5),
    the data settings (regular trading hours only, the futures roll window), and how to ride
    out the gateway: the next client id when ours is taken, its daily restart time and zone."""
    return {
        "host": os.environ.get("SCALP_IB_HOST") or app_settings.ib_host,
        "port": int(os.environ.get("SCALP_IB_PORT") or app_settings.ib_port),
        "client_id": int(os.environ.get("SCALP_IB_CLIENT_ID") or app_settings.ib_client_id),
        "use_rth": bool(app_settings.use_rth),
        "roll_days": int(app_settings.roll_days),
        "next_client_id": bool(app_settings.ib_next_client_id),
        "restart_time": str(app_settings.ib_restart_time),
        "restart_zone": str(app_settings.ib_restart_zone),
    }


def _run_rules(rule_ids: tuple[int, ...] | None) -> tuple[RunRule, ...]:
    """The rules ``--rule`` named, or else the active set, validated."""
    if rule_ids is not None:
        if len(set(rule_ids)) > MAX_ACTIVE_RULES:
            raise ConfigError(f"At most {MAX_ACTIVE_RULES} rules run at once.")
        found = Rule.objects.in_bulk(rule_ids)
        missing = [pk for pk in rule_ids if pk not in found]
        if missing:
            raise ConfigError(f"There is no rule with id {missing[0]}.")
        rows = [found[pk] for pk in dict.fromkeys(rule_ids)]
    else:
        rows = rules_active()
        if not rows:
            raise ConfigError("No active rule: activate at least one before starting.")
    rules = []
    for row in rows:
        try:
            rule_def = validate_definition(row.definition)
        except RuleError as err:
            raise ConfigError(f"The rule “{row.name}” is invalid: {err}") from None
        rules.append(RunRule(id=row.pk, name=row.name, rule=rule_def))
    return tuple(rules)


def load_run_config(overrides: Overrides) -> RunConfig:
    """Read everything a run needs; raise ConfigError with an actionable sentence."""
    app_settings = settings_get()
    rules = _run_rules(overrides.rule_ids)

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
    for run_rule in rules:
        if problem := timeframe_problem(run_rule.rule, bar_seconds):
            raise ConfigError(f"The rule “{run_rule.name}” can't run: {problem}.")
    return RunConfig(
        rules=rules,
        watchlist_id=watchlist.pk if watchlist is not None else None,
        watchlist_name=watchlist.name if watchlist is not None else "",
        symbols=symbols,
        bar_seconds=bar_seconds,
        feed=feed,
        csv_path=csv_path,
        speed=overrides.speed if overrides.speed is not None else 1.0,
        ib=ib_connection(app_settings),
        horizons=_horizons(app_settings.outcome_horizons),
        retention_days=int(app_settings.bar_retention_days),
    )


def _horizons(text: str) -> tuple[int, ...]:
    """The settings' outcome horizons; a row written around the cleaner (raw SQL) reads as
    the default rather than stopping the run."""
    try:
        return parse_horizons(text)
    except HorizonError:
        return parse_horizons(DEFAULT_HORIZONS)
