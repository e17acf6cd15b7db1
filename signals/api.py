"""The REST mirror of the program feed: ``GET /api/signals/`` and ``GET /api/engine/``.

Same JSON objects as `/ws/signals/` (``signals.events``), same token (``engine.tokens``), or a
logged-in session.
"""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from engine.core.inputs import InputError, parse_whole
from engine.core.outcomes import horizon_label
from engine.models import EngineState
from engine.services import engine_state_get
from engine.tokens import feed_token_valid, token_from_request
from signals import events, realtime
from signals.forms import MAX_ID
from signals.services import outcomes_of, signals_after
from watchlists.services import symbol_normalize

API_LIMIT_DEFAULT = 100
API_LIMIT_MAX = 1000
NO_TOKEN = "Send the feed token as 'Authorization: Bearer <token>'."


def api_authorized(request: HttpRequest) -> bool:
    """A logged-in session, or the external consumer token (header or ``?token=``)."""
    return request.user.is_authenticated or feed_token_valid(token_from_request(request))


def api_error(status: int, message: str) -> JsonResponse:
    return JsonResponse(events.error(message), status=status)


@login_not_required
@require_GET
def api_signals(request: HttpRequest) -> JsonResponse:
    """``GET /api/signals/?since=<id>&symbol=&limit=``: stored signals in id order."""
    if not api_authorized(request):
        return api_error(403, NO_TOKEN)
    # An empty value means the default, as a missing one does.
    since_raw, limit_raw = request.GET.get("since", ""), request.GET.get("limit", "")
    try:
        since = parse_whole(since_raw, name="since", maximum=MAX_ID) if since_raw else 0
        limit = (
            parse_whole(limit_raw, name="limit", minimum=1, maximum=API_LIMIT_MAX)
            if limit_raw
            else API_LIMIT_DEFAULT
        )
    except InputError as err:
        return api_error(400, str(err))
    symbol = request.GET.get("symbol", "")
    if symbol.strip():
        try:  # an item's canonical text: es:fut:cme and ES:FUT:CME find the same signals
            symbol = symbol_normalize(symbol)
        except ValidationError as err:
            return api_error(400, " ".join(err.message_dict["symbols"]))
    else:
        symbol = ""
    rows = signals_after(since, symbols=[symbol] if symbol else None, limit=limit)
    signals = with_outcomes([row.to_event() for row in rows])
    return JsonResponse({"signals": signals, "last_id": signals[-1]["id"] if signals else since})


def with_outcomes(signals: list[events.SignalEvent]) -> list[dict]:
    """Each signal event with ``outcomes``: per configured horizon its stored final values
    ``{"return_pct", "mfe_pct", "mae_pct"}``, or null while not final; a stored outcome at a
    horizon no longer configured is kept (docs/outcomes.md)."""
    stored = outcomes_of(event["id"] for event in signals) if signals else {}
    empty = dict.fromkeys(horizon_label(h) for h in realtime.outcome_horizons())
    return [{**event, "outcomes": {**empty, **stored.get(event["id"], {})}} for event in signals]


def engine_status(state: EngineState) -> events.StatusEvent:
    """The engine state as the full ``status`` event."""
    return events.status(
        state=state.effective_state,
        message=state.message,
        time=int(state.updated_at.timestamp()),
        desired=state.desired,
        heartbeat=state.heartbeat.isoformat() if state.heartbeat else None,
        last_bar_time=state.last_bar_time.isoformat() if state.last_bar_time else None,
        rule_id=state.run_rule_id,
        watchlist_id=state.run_watchlist_id,
        rule_ids=state.run_rule_ids,
        symbols=_run_symbols(state),
    )


def _run_symbols(state: EngineState) -> dict[str, dict[str, object]]:
    """Per item of the live run: contract, market and how its bars flow (``stream``:
    streaming / stale / closed / refused or null, ``stream_reason``, ``stream_since`` epoch
    seconds or null); every key present even when the worker didn't say."""
    if state.run_started is None or not isinstance(state.symbols, dict):
        return {}
    return {
        name: {"stream": None, "stream_reason": "", "stream_since": None, **info}
        for name, info in state.symbols.items()
        if isinstance(info, dict)
    }


@login_not_required
@require_GET
def api_engine(request: HttpRequest) -> JsonResponse:
    """``GET /api/engine/``: the engine's state (session or feed token)."""
    if not api_authorized(request):
        return api_error(403, NO_TOKEN)
    return JsonResponse(engine_status(engine_state_get()))
