"""The dashboard / control panel and its htmx pieces (status card, Start / Stop, the active
rules and the watchlist picker)."""

import math
import time

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from alerts.services import destinations_failing
from engine.services import (
    engine_events_latest,
    engine_is_running,
    engine_start,
    engine_start_problems,
    engine_state_get,
    engine_stop,
    settings_get,
)
from engine.worker.clock import ClockError, market_clock
from rules.services import MAX_ACTIVE_RULES, rules_active
from scalpsite.ui import is_htmx
from signals import events, realtime
from signals.models import Signal
from signals.services import last_signal_of, latest_signals, outcomes_of
from signals.templatetags.outcomes import outcome_cells
from watchlists.models import Watchlist
from watchlists.services import watchlist_activate, watchlist_get_active

RECENT_SIGNALS = 50
ENGINE_EVENTS_SHOWN = 20  # lines of the engine's story on the dashboard (the admin has 500)


def _controls_context() -> dict:
    """What the status card, the Start/Stop buttons, the active rules and the watchlist
    picker are drawn from."""
    state = engine_state_get()
    app_settings = settings_get()
    watchlist = watchlist_get_active()
    active_rules = rules_active()
    running = engine_is_running(state)
    start_blocker = " ".join(
        engine_start_problems(state=state, active_rules=active_rules, watchlist=watchlist)
    )
    engine_events = engine_events_latest(ENGINE_EVENTS_SHOWN)
    return {
        "engine": state,
        "status": {
            "state": state.effective_state,
            "label": state.effective_state_label,
            "message": state.message,
            "last_bar_time": state.last_bar_time,
        },
        "settings": app_settings,
        "active_rules": active_rules,
        "max_active": MAX_ACTIVE_RULES,
        "watchlist": watchlist,
        "running": running,
        "start_blocker": start_blocker,
        "pickers_locked": running or state.is_locked,
        "watchlists": Watchlist.objects.order_by("name"),
        "markets": _markets(state),
        "engine_events": engine_events,
        "last_event_id": engine_events[-1].pk if engine_events else 0,
    }


def _last_signal(symbol: str, rule_id: int) -> events.SignalEvent | None:
    row = Signal.objects.filter(symbol=symbol, rule_id=rule_id).order_by("-time", "-id").first()
    return row.to_event() if row is not None else None


def _markets(state) -> dict[str, dict]:
    """Per item of the live run: its contract, market line and stream line (empty without a
    run)."""
    if state.run_started is None or not state.is_alive or not isinstance(state.symbols, dict):
        return {}
    now = _market_now()
    return {
        name: {**info, "slug": slugify(name), "stream_line": stream_line(info, now)}
        for name, info in state.symbols.items()
        if isinstance(info, dict)
    }


def _market_now() -> float:
    # The worker's clock (a test clock runs faster), so "stale 42 s" counts in the feed's time.
    try:
        return market_clock()()
    except ClockError:
        return time.time()


STREAM_STATES = ("streaming", "stale", "closed", "refused")


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def stream_line(info: dict, now: float) -> str:
    """How the item's bars flow, for its tile: "streaming", "stale 42 s" (silent since
    ``stream_since``, epoch seconds), "closed", "refused: <reason>"; "" when the feed
    doesn't say."""
    stream = info.get("stream")
    if stream not in STREAM_STATES:
        return ""
    reason = info.get("stream_reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if stream == "refused":
        return f"refused: {reason}" if reason else "refused"
    if stream == "stale":
        since = info.get("stream_since")
        if isinstance(since, int | float) and not isinstance(since, bool) and math.isfinite(since):
            return f"stale {_duration(max(0, int(now - since)))}"
    return str(stream)


def _tiles(watchlist, active_rules, markets: dict[str, dict]) -> list[dict]:
    """Per symbol: its last signal, its contract and market line while a run is live, and
    each active rule with that rule's last signal there (the rule's state arrives with the
    next bar)."""
    symbols = watchlist.symbols if watchlist is not None else []
    tiles = []
    for symbol in symbols:
        last = last_signal_of(symbol)
        rules = [
            {"rule": rule, "last_signal": _last_signal(symbol, rule.pk)} for rule in active_rules
        ]
        tiles.append(
            {
                "symbol": symbol,
                "last_signal": last.to_event() if last else None,
                "rules": rules,
                "market": markets.get(symbol, {}),
            }
        )
    return tiles


def _operands(rules) -> list[str]:
    """The rules' named operands in order of appearance (what the tiles and charts show)."""
    names: list[str] = []
    for rule in rules:
        for condition in rule.definition.get("conditions", []):
            for side in (condition.get("left"), condition.get("right")):
                if isinstance(side, str) and side not in names:
                    names.append(side)
    return names


def _recent_signals() -> list[dict]:
    """The live panel's rows, newest first, each with its outcome cells (one per configured
    horizon; "…" until final)."""
    rows = [row.to_event() for row in latest_signals(RECENT_SIGNALS)]
    stored = outcomes_of(row["id"] for row in rows)
    horizons = realtime.outcome_horizons()
    return [
        {**row, "outcome_cells": outcome_cells(horizons, stored.get(row["id"]))} for row in rows
    ]


@require_GET
def dashboard(request):
    context = _controls_context()
    recent = _recent_signals()
    context.update(
        tiles=_tiles(context["watchlist"], context["active_rules"], context["markets"]),
        recent_signals=recent,
        last_signal_id=recent[0]["id"] if recent else 0,
        operands=_operands(context["active_rules"]),
        alerts_failing=destinations_failing(),
    )
    return render(request, "engine/dashboard.html", context)


@require_GET
def controls(request):
    """The status card, buttons and pickers, and the engine log: fetched after each change of
    state (each live status event) and when the page's socket comes back."""
    context = _controls_context()
    context["events_oob"] = True
    return render(request, "engine/partials/controls.html", context)


@require_GET
def status(request):
    """The polled status card; asks for a redraw of the controls when the state changed, and
    sends the engine log when it has a line the page has not (``?events=`` its newest id)."""
    context = _controls_context()
    context["refresh"] = request.GET.get("known") != context["status"]["state"]
    context["polled"] = True
    context["events_oob"] = request.GET.get("events") != str(context["last_event_id"])
    watchlist = context["watchlist"]
    context["tiles"] = [
        {"slug": slugify(name), "market": context["markets"].get(name, {})}
        for name in (watchlist.symbols if watchlist is not None else [])
    ]
    return render(request, "engine/partials/status.html", context)


def _controls_response(request, error: str = ""):
    context = _controls_context()
    context["error"] = error
    if is_htmx(request):
        return render(request, "engine/partials/controls.html", context)
    if error:
        messages.error(request, error)
    return redirect("engine:dashboard")


def _notify_worker(command: str) -> None:
    # The worker also polls the desired state every half second; this only makes it quicker.
    async_to_sync(realtime.engine_command)(command)


@require_POST
def start(request):
    try:
        engine_start()
    except ValidationError as err:
        return _controls_response(request, " ".join(err.messages))
    _notify_worker("start")
    return _controls_response(request)


@require_POST
def stop(request):
    engine_stop()
    _notify_worker("stop")
    return _controls_response(request)


@require_POST
def choose(request):
    """The watchlist picker (refused while a run holds it). The active rules are chosen on
    the Rules page."""
    try:
        if "watchlist" in request.POST:
            watchlist = get_object_or_404(Watchlist, pk=_int(request.POST["watchlist"]))
            watchlist_activate(watchlist=watchlist)
    except ValidationError as err:
        return _controls_response(request, " ".join(err.messages))
    response = _controls_response(request)
    if is_htmx(request):
        response["HX-Refresh"] = "true"  # the tiles follow the watchlist
    return response


def _int(raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0  # no such row: a 404 page, not a 500
