"""State changes of the settings row and the engine-state row: the only writers of both.

The pages (``engine.panel``), the admin and the CLI change settings and ask for Start / Stop;
the worker (``engine.worker``) reports its state, heartbeat and run through the ``worker_*``
functions. Tokens, their rotation included, are in ``engine.tokens``.
"""

from collections.abc import Sequence
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from engine.models import (
    AppSettings,
    EngineEvent,
    EngineState,
    horizons_clean,
    restart_time_clean,
    restart_zone_clean,
)
from rules.models import Rule
from watchlists.models import Watchlist


def settings_get() -> AppSettings:
    """The settings row, created on first use with fresh tokens.

    Creating it means a fresh database (the migrations make the system rule active; a test
    database flushed since has no row and no active rule): then the system rule becomes
    active unless some rule already is. Deactivating every rule later stays so.
    """
    app_settings, created = AppSettings.objects.get_or_create(pk=1)
    if created and not Rule.objects.filter(is_active=True).exists():
        Rule.objects.filter(is_system=True).update(is_active=True)
    return app_settings


def engine_state_get() -> EngineState:
    state, _ = EngineState.objects.get_or_create(pk=1)
    return state


def engine_assert_unlocked(*, rule=None, watchlist=None, action: str) -> None:
    """Refuse ``action`` on a rule or watchlist that a live engine run holds (DESIGN §4):
    the run's rules and every active rule (§7.2), the run's watchlist."""
    state = engine_state_get()
    if not state.is_locked:
        return
    if (
        rule is not None
        and rule.pk is not None
        and (
            rule.pk in state.run_rule_ids
            or Rule.objects.filter(pk=rule.pk, is_active=True).exists()
        )
    ):
        raise ValidationError(
            f"The engine is running with the rule “{rule.name}”: stop the engine before {action}."
        )
    if (
        watchlist is not None
        and watchlist.pk is not None
        and state.run_watchlist_id == watchlist.pk
    ):
        raise ValidationError(
            f"The engine is running with the watchlist “{watchlist.name}”: "
            f"stop the engine before {action}."
        )


def engine_stopped_problem(*, action: str) -> str:
    """Why ``action`` (changing the active rules or watchlist) is refused now; '' when it
    isn't. Pages show it beside the disabled control."""
    if engine_state_get().is_locked:
        return f"The engine is running: stop it before {action}."
    return ""


def engine_assert_stopped(*, action: str) -> None:
    """Refuse ``action`` while a run is live."""
    if problem := engine_stopped_problem(action=action):
        raise ValidationError(problem)


NO_ACTIVE_RULE = "Activate at least one rule first."

SETTINGS_FIELDS = {
    "ib_host",
    "ib_port",
    "ib_client_id",
    "feed",
    "csv_path",
    "bar_seconds",
    "use_rth",
    "roll_days",
    "ib_next_client_id",
    "ib_restart_time",
    "ib_restart_zone",
    "bar_retention_days",
    "outcome_horizons",
}
# Text settings read through one cleaner whichever entry point sends them (page, admin, code).
_SETTINGS_CLEANERS = {
    "ib_restart_time": restart_time_clean,
    "ib_restart_zone": restart_zone_clean,
    "outcome_horizons": horizons_clean,
}
SETTINGS_LOCK_ACTION = "changing the connection, feed or bar size"


def settings_update(**fields) -> AppSettings:
    """Change connection, feed or bar-size settings; they apply to the next engine start.
    Refused while a run is live, so the page never shows settings the run isn't using."""
    unknown = set(fields) - SETTINGS_FIELDS
    if unknown:
        raise ValueError(f"not settings fields: {sorted(unknown)}")
    engine_assert_stopped(action=SETTINGS_LOCK_ACTION)
    app_settings = settings_get()
    for name, value in fields.items():
        if name in _SETTINGS_CLEANERS:
            if not isinstance(value, str):
                raise ValidationError({name: f"The {name} setting is text, not {value!r}."})
            try:
                value = _SETTINGS_CLEANERS[name](value)
            except ValidationError as err:
                raise ValidationError({name: err.messages}) from None
        setattr(app_settings, name, value)
    app_settings.full_clean()
    app_settings.save()
    return app_settings


def engine_request(*, desired: str) -> EngineState:
    """Record what the user wants (running / stopped); the worker acts on it."""
    if desired not in EngineState.Desired.values:
        raise ValueError(f"desired must be one of {EngineState.Desired.values}")
    with transaction.atomic():
        state = engine_state_get()
        state.desired = desired
        state.save(update_fields=["desired", "updated_at"])
    return state


def engine_is_running(state: EngineState) -> bool:
    """A live worker is running, or has been asked to run: Start is refused."""
    return state.is_locked or (state.is_alive and state.desired == EngineState.Desired.RUNNING)


def engine_start_problems(*, state: EngineState, active_rules, watchlist) -> list[str]:
    """Why Start can't be pressed now, as sentences (none: it can). ``active_rules``: the
    active set (a list or queryset of rules)."""
    if engine_is_running(state):
        return ["The engine is already running; stop it first."]
    problems = []
    if not active_rules:
        problems.append(NO_ACTIVE_RULE)
    if watchlist is None:
        problems.append("Choose an active watchlist first.")
    elif not watchlist.symbols:
        problems.append(f"The watchlist “{watchlist.name}” is empty: add a symbol first.")
    return problems


def engine_start() -> EngineState:
    """The Start button: check there is something to run, then ask the worker to start."""
    settings_get()  # a fresh database starts with the system rule active
    problems = engine_start_problems(
        state=engine_state_get(),
        active_rules=list(Rule.objects.filter(is_active=True)),
        watchlist=Watchlist.objects.filter(is_active=True).first(),
    )
    if problems:
        raise ValidationError(problems)
    return engine_request(desired=EngineState.Desired.RUNNING)


def engine_stop() -> EngineState:
    """The Stop button: the worker cancels its subscriptions and releases the locks."""
    return engine_request(desired=EngineState.Desired.STOPPED)


# --- the worker's writes ----------------------------------------------------------------------


def _worker_write(**fields) -> None:
    engine_state_get()  # the row exists
    EngineState.objects.filter(pk=1).update(**fields, updated_at=timezone.now())


def worker_recover(*, pid: int) -> str:
    """At worker start: forget a run a dead worker left locked (kill -9, power loss); returns
    a note for the log when there was one. Either sentence is also a line of the engine events
    log: the story shows each worker start, and a crash recovered from."""
    state = engine_state_get()
    note = ""
    if state.run_rule_ids or state.run_watchlist_id:
        note = "Recovered from a worker that stopped without cleaning up; its locks are released."
    message = note or "Engine ready. Press Start to scan."
    with transaction.atomic():
        _worker_write(
            state=EngineState.State.IDLE,
            message=message,
            heartbeat=timezone.now(),
            pid=pid,
            run_rules=[],
            run_watchlist=None,
            run_started=None,
        )
        _engine_event_add(state=EngineState.State.IDLE, message=message)
    return note


def worker_heartbeat(*, last_bar_time: datetime | None = None) -> str:
    """The worker's tick: it is alive (and how far its bars got); returns the desired state."""
    fields: dict = {"heartbeat": timezone.now()}
    if last_bar_time is not None:
        fields["last_bar_time"] = last_bar_time
    _worker_write(**fields)
    return engine_state_get().desired


ENGINE_EVENTS_KEPT = 500  # the newest lines of the engine's story kept
ENGINE_EVENTS_PRUNE_EVERY = 50  # inserts between two prunes (one indexed DELETE)
ENGINE_EVENT_MAX_CHARS = 2000  # a longer sentence is cut (the state row keeps it whole)


def _engine_event_add(*, state: str, message: str, symbol: str = "") -> EngineEvent:
    """Append a line to the engine's story; every ``ENGINE_EVENTS_PRUNE_EVERY``-th insert
    deletes what is older than the newest ``ENGINE_EVENTS_KEPT``."""
    if len(message) > ENGINE_EVENT_MAX_CHARS:
        message = message[: ENGINE_EVENT_MAX_CHARS - 1] + "…"
    event = EngineEvent.objects.create(state=state, message=message, symbol=symbol[:40])
    if event.pk % ENGINE_EVENTS_PRUNE_EVERY == 0:
        EngineEvent.objects.filter(pk__lte=event.pk - ENGINE_EVENTS_KEPT).delete()
    return event


def engine_events_latest(limit: int = 20) -> list[EngineEvent]:
    """The newest ``limit`` lines of the engine's story, oldest first (read as a story)."""
    return list(reversed(EngineEvent.objects.order_by("-id")[:limit]))


def worker_report(*, state: str, message: str, symbol: str = "") -> None:
    """The worker's state and its sentence (with a heartbeat), and a line in the engine
    events log (``symbol``: the item the sentence is about, if one)."""
    with transaction.atomic():
        _worker_write(state=state, message=message, heartbeat=timezone.now())
        _engine_event_add(state=state, message=message, symbol=symbol)


def worker_run_started(*, rule_ids: Sequence[int], watchlist_id: int | None) -> None:
    """A run began: it holds these rules and watchlist until :func:`worker_run_ended`."""
    _worker_write(
        run_rules=[int(pk) for pk in rule_ids],
        run_watchlist_id=watchlist_id,
        run_started=timezone.now(),
        last_bar_time=None,
        symbols={},
    )


def worker_symbols(*, symbols: dict) -> None:
    """The run's items: each one's resolved contract and its market line (DESIGN §7.1)."""
    _worker_write(symbols=symbols)


def worker_run_ended(*, last_bar_time: datetime | None = None) -> None:
    """The run is over: its rule and watchlist are free again (and its last bar is kept)."""
    fields: dict = {"run_rules": [], "run_watchlist": None, "run_started": None}
    if last_bar_time is not None:
        fields["last_bar_time"] = last_bar_time
    _worker_write(**fields)
