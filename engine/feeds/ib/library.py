"""The IB client library (ib_async, or ib_insync as fallback): the only module importing it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

try:
    import ib_async as ibapi
except ImportError:  # pragma: no cover - exercised in the ib_insync virtualenv
    import ib_insync as ibapi  # type: ignore[no-redef]

from engine.core.bars import Bar

REALTIME_BAR_SECONDS = 5


def new_client() -> Any:
    """A fresh, unconnected ``IB`` client object."""
    return ibapi.IB()


def connect_options() -> dict[str, Any]:
    """Extra ``connectAsync`` arguments this library version understands."""
    if hasattr(ibapi, "StartupFetchNONE"):
        return {"fetchFields": ibapi.StartupFetchNONE}
    return {}


def stock(symbol: str, exchange: str, currency: str) -> Any:
    return ibapi.Stock(symbol, exchange, currency)


def realtime_bar(symbol: str, rt: Any) -> Bar:
    """The library's 5-second ``RealTimeBar`` as our :class:`Bar`."""
    return Bar(
        symbol,
        int(rt.time.timestamp()),
        REALTIME_BAR_SECONDS,
        float(rt.open_),
        float(rt.high),
        float(rt.low),
        float(rt.close),
        float(rt.volume),
    )


def history_bars(symbol: str, rows: Iterable[Any] | None, seconds: int, now: float) -> list[Bar]:
    """The library's ``BarData`` rows (``formatDate=2``) as closed :class:`Bar` objects."""
    bars = []
    for row in rows or []:
        start = _epoch(row.date)
        if start + seconds > now:
            continue  # still forming
        bars.append(
            Bar(symbol, start, seconds, float(row.open), float(row.high),
                float(row.low), float(row.close), float(row.volume))
        )  # fmt: skip
    return bars


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    # A date (daily bars) never reaches here with formatDate=2 intraday bars.
    raise ValueError(f"unexpected IB bar time {value!r}")
