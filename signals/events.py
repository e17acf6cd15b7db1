"""Every event the system emits, and the one place each one's dict is built.

The contract is DESIGN §3 and docs/delivery.md. The worker builds its events here, the bridge
carries them, the sockets, REST and CSV send them, and the pure core's ``replay`` prints them,
so this module is plain Python: no Django, nothing but the core's time format.

Kinds a program can receive: ``signal``, ``outcome`` (a signal's result at a horizon, DESIGN
§7.3), ``status``, ``bar`` (after subscribing to the bar stream), ``pong``, ``subscribed``
and ``error``. ``hello`` only travels up the bridge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final, NotRequired, TypedDict

from engine.core.bars import format_time
from engine.core.machine import Signal
from engine.core.outcomes import horizon_label

SIGNAL: Final = "signal"
OUTCOME: Final = "outcome"
STATUS: Final = "status"
BAR: Final = "bar"
PONG: Final = "pong"
SUBSCRIBED: Final = "subscribed"
ERROR: Final = "error"
HELLO: Final = "hello"  # the worker's first frame on the bridge; never forwarded

# What the worker sends over the bridge and the fan-out forwards.
PUBLISHED: Final = frozenset({SIGNAL, OUTCOME, STATUS, BAR})


class SignalEvent(TypedDict):
    """DESIGN §3: the seed's keys first, then the extras."""

    event: str
    symbol: str
    price: float
    rule_id: int | None
    timestamp: str  # bar close time, UTC, YYYY-MM-DDTHH:MM:SSZ
    id: int  # the database id (a replay's sequence number)
    rule_name: str
    bar_seconds: int
    values: dict[str, float]
    side: str | None  # the rule's side: "buy", "sell" or None (null)
    # DESIGN §7.1: what the feed resolved the item to (local_symbol, sec_type, exchange,
    # currency, min_tick); None (null) where no feed said (replay, older rows)
    contract: dict[str, object] | None


class StatusEvent(TypedDict):
    """The engine's state and its sentence. ``GET /api/engine/`` adds the details."""

    event: str
    state: str
    message: str
    time: str
    desired: NotRequired[str]
    heartbeat: NotRequired[str | None]
    last_bar_time: NotRequired[str | None]
    rule_id: NotRequired[int | None]
    watchlist_id: NotRequired[int | None]
    rule_ids: NotRequired[list[int]]
    # per item: {"contract": {...} | null, "open": bool | null, "market": "trading (…)",
    #  "stream": "streaming" | "stale" | "closed" | "refused" | null, "stream_reason": "…",
    #  "stream_since": epoch seconds | null, "last_bar": epoch seconds | null}
    symbols: NotRequired[dict[str, dict[str, object]]]


class RuleState(TypedDict):
    """One active rule's state machine on a symbol (an item of a bar event's ``rules``)."""

    rule_id: int | None
    state: str  # WAIT or COOLDOWN
    cooldown_until: str | None


class BarEvent(TypedDict):
    """A closed bar with the rules' operand values and the symbol's machine states:
    ``state``/``cooldown_until`` are the first rule's (the seed's keys), ``rules`` has each."""

    event: str
    symbol: str
    time: str  # bar start, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    values: dict[str, float | None]  # every operand of the rule; None (null) while undefined
    state: str
    cooldown_until: str | None
    rules: list[RuleState]
    contract: dict[str, object] | None  # as in a signal event


class OutcomeEvent(TypedDict):
    """DESIGN §7.3: signal ``id``'s final outcome at ``horizon`` ("1m"); the three values
    are None (null) when no bar closed in the window (the market was closed)."""

    event: str
    id: int
    horizon: str
    return_pct: float | None
    mfe_pct: float | None
    mae_pct: float | None
    symbol: str
    rule_id: int | None
    timestamp: str  # the signal's bar close time, as in its signal event


class ErrorEvent(TypedDict):
    event: str
    message: str


class SubscribedEvent(TypedDict):
    event: str
    symbols: list[str] | None  # None: every symbol
    bars: bool


class PongEvent(TypedDict):
    event: str


Event = (
    SignalEvent | OutcomeEvent | StatusEvent | BarEvent | ErrorEvent | SubscribedEvent | PongEvent
)


def signal(
    *,
    id: int,
    symbol: str,
    price: float,
    rule_id: int | None,
    rule_name: str,
    close_time: int,
    bar_seconds: int,
    values: dict[str, float],
    side: str | None = None,
    contract: Mapping[str, object] | None = None,
) -> SignalEvent:
    """A signal; ``close_time`` is the bar's close, epoch seconds; ``side`` the rule's;
    ``contract`` the item's resolved contract (empty or None: null)."""
    return {
        "event": SIGNAL,
        "symbol": symbol,
        "price": price,
        "rule_id": rule_id,
        "timestamp": format_time(close_time),
        "id": id,
        "rule_name": rule_name,
        "bar_seconds": bar_seconds,
        "values": values,
        "side": side,
        "contract": dict(contract) if contract else None,
    }


def signal_from(
    fired: Signal, *, id: int, rule_name: str, bar_seconds: int, shift: int = 0
) -> SignalEvent:
    """The event of a signal the core fired (``shift``: seconds added to its close time, for
    a replay that learns the bar length only at the end of the file)."""
    return signal(
        id=id,
        symbol=fired.symbol,
        price=fired.price,
        rule_id=fired.rule_id,
        rule_name=rule_name,
        close_time=fired.close_time + shift,
        bar_seconds=bar_seconds,
        values=fired.values,
        side=fired.side,
    )


def outcome(
    *,
    id: int,
    horizon: int,
    return_pct: float | None,
    mfe_pct: float | None,
    mae_pct: float | None,
    symbol: str,
    rule_id: int | None,
    close_time: int,
) -> OutcomeEvent:
    """Signal ``id``'s outcome at ``horizon`` seconds (the event names it "1m", "5m", ...);
    ``symbol``, ``rule_id`` and ``close_time`` (its ``timestamp``) are the signal's."""
    return {
        "event": OUTCOME,
        "id": id,
        "horizon": horizon_label(horizon),
        "return_pct": return_pct,
        "mfe_pct": mfe_pct,
        "mae_pct": mae_pct,
        "symbol": symbol,
        "rule_id": rule_id,
        "timestamp": format_time(close_time),
    }


# The CSV export's columns: a signal event's fields, flat (the history page's export).
# New columns go last, so a reader of the older columns by position keeps working.
CSV_HEADER: Final = (
    "id", "time_utc", "symbol", "price", "rule_id", "rule_name", "bar_seconds", "values",
    "side",
)  # fmt: skip


def csv_fields(
    event: SignalEvent,
) -> tuple[int, str, str, float, int | None, str, int, str, str]:
    """A signal event as one CSV row, in :data:`CSV_HEADER` order (``values`` as JSON,
    ``side`` empty when the rule has none)."""
    return (
        event["id"],
        event["timestamp"],
        event["symbol"],
        event["price"],
        event["rule_id"],
        event["rule_name"],
        event["bar_seconds"],
        json.dumps(event["values"], separators=(",", ":"), sort_keys=True),
        event.get("side") or "",
    )


def status(
    *,
    state: str,
    message: str,
    time: int,
    desired: str | None = None,
    heartbeat: str | None = None,
    last_bar_time: str | None = None,
    rule_id: int | None = None,
    watchlist_id: int | None = None,
    rule_ids: list[int] | None = None,
    symbols: Mapping[str, dict[str, object]] | None = None,
) -> StatusEvent:
    """The engine's state. The live event carries state, message and time; ``desired`` given
    means the full form of ``GET /api/engine/`` (heartbeat, last bar, what the run holds:
    ``rule_ids`` every rule, ``rule_id`` the first, as in the seed)."""
    event: StatusEvent = {
        "event": STATUS,
        "state": state,
        "message": message,
        "time": format_time(time),
    }
    if desired is not None:
        event["desired"] = desired
        event["heartbeat"] = heartbeat
        event["last_bar_time"] = last_bar_time
        event["rule_id"] = rule_id
        event["watchlist_id"] = watchlist_id
        event["rule_ids"] = list(rule_ids or [])
        event["symbols"] = dict(symbols or {})
    return event


def bar(
    *,
    symbol: str,
    start: int,
    open: float,
    high: float,
    low: float,
    close: float,
    volume: float,
    values: dict[str, float | None],
    state: str,
    cooldown_until: int | None,
    rules: Sequence[RuleState] = (),
    contract: Mapping[str, object] | None = None,
) -> BarEvent:
    """A closed bar; ``state``/``cooldown_until`` are the first rule's, ``rules`` (built with
    :func:`rule_state`) every rule's in the run's order."""
    return {
        "event": BAR,
        "symbol": symbol,
        "time": format_time(start),
        "open": open,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "values": values,
        "state": state,
        "cooldown_until": format_time(cooldown_until) if cooldown_until else None,
        "rules": list(rules),
        "contract": dict(contract) if contract else None,
    }


def rule_state(*, rule_id: int | None, state: str, cooldown_until: int | None) -> RuleState:
    """One rule's machine on a symbol, for a bar event's ``rules``."""
    return {
        "rule_id": rule_id,
        "state": state,
        "cooldown_until": format_time(cooldown_until) if cooldown_until else None,
    }


def error(message: str) -> ErrorEvent:
    """A program's frame (or a REST request) was refused; the connection stays open."""
    return {"event": ERROR, "message": message}


def subscribed(symbols: frozenset[str] | None, *, bars: bool) -> SubscribedEvent:
    return {
        "event": SUBSCRIBED,
        "symbols": None if symbols is None else sorted(symbols),
        "bars": bars,
    }


def pong() -> PongEvent:
    return {"event": PONG}


def hello() -> dict[str, str]:
    return {"event": HELLO}


def text(event: Event | Mapping[str, object]) -> str:
    """An event as the compact JSON text a program socket gets (and the bridge carries)."""
    return json.dumps(event, separators=(",", ":"))
