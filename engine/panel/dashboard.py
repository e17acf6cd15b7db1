"""The dashboard / control panel and its htmx pieces (status card, Start / Stop, pickers)."""

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from engine.services import (
    engine_is_running,
    engine_start,
    engine_start_problems,
    engine_state_get,
    engine_stop,
    settings_get,
)
from rules.models import Rule
from rules.services import rule_activate
from scalpsite.ui import is_htmx
from signals import realtime
from signals.services import last_signal_of, latest_signals
from watchlists.models import Watchlist
from watchlists.services import watchlist_activate, watchlist_get_active

RECENT_SIGNALS = 50


def _controls_context() -> dict:
    """What the status card, the Start/Stop buttons and the pickers are drawn from."""
    state = engine_state_get()
    app_settings = settings_get()
    watchlist = watchlist_get_active()
    running = engine_is_running(state)
    start_blocker = " ".join(
        engine_start_problems(
            state=state, active_rule=app_settings.active_rule, watchlist=watchlist
        )
    )
    return {
        "engine": state,
        "status": {
            "state": state.effective_state,
            "label": state.effective_state_label,
            "message": state.message,
            "last_bar_time": state.last_bar_time,
        },
        "settings": app_settings,
        "active_rule": app_settings.active_rule,
        "watchlist": watchlist,
        "running": running,
        "start_blocker": start_blocker,
        "pickers_locked": running or state.is_locked,
        "rules": Rule.objects.order_by("-is_system", "name"),
        "watchlists": Watchlist.objects.order_by("name"),
    }


def _tiles(watchlist) -> list[dict]:
    symbols = watchlist.symbols if watchlist is not None else []
    tiles = []
    for symbol in symbols:
        last = last_signal_of(symbol)
        tiles.append({"symbol": symbol, "last_signal": last.to_event() if last else None})
    return tiles


def _operands(rule) -> list[str]:
    """The rule's named operands in order of appearance (what the tiles and charts show)."""
    names: list[str] = []
    for condition in rule.definition.get("conditions", []) if rule else []:
        for side in (condition.get("left"), condition.get("right")):
            if isinstance(side, str) and side not in names:
                names.append(side)
    return names


@require_GET
def dashboard(request):
    context = _controls_context()
    recent = [row.to_event() for row in latest_signals(RECENT_SIGNALS)]
    context.update(
        tiles=_tiles(context["watchlist"]),
        recent_signals=recent,
        last_signal_id=recent[0]["id"] if recent else 0,
        operands=_operands(context["active_rule"]),
    )
    return render(request, "engine/dashboard.html", context)


@require_GET
def controls(request):
    """The status card, buttons and pickers: fetched after each change of state."""
    return render(request, "engine/partials/controls.html", _controls_context())


@require_GET
def status(request):
    """The polled status card; asks for a redraw of the controls when the state changed."""
    context = _controls_context()
    context["refresh"] = request.GET.get("known") != context["status"]["state"]
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
    """The rule and watchlist pickers (refused while a run holds them)."""
    try:
        if "rule" in request.POST:
            rule_activate(rule=get_object_or_404(Rule, pk=_int(request.POST["rule"])))
        if "watchlist" in request.POST:
            watchlist = get_object_or_404(Watchlist, pk=_int(request.POST["watchlist"]))
            watchlist_activate(watchlist=watchlist)
    except ValidationError as err:
        return _controls_response(request, " ".join(err.messages))
    response = _controls_response(request)
    if is_htmx(request):
        response["HX-Refresh"] = "true"  # the tiles follow the watchlist, the values the rule
    return response


def _int(raw: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0  # no such row: a 404 page, not a 500
