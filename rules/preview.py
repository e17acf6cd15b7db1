"""Running a draft rule over bars for the preview: one SymbolMachine per symbol, no database."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.core.bars import Bar
from engine.core.instruments import ItemError
from engine.core.machine import SymbolMachine
from engine.core.rules import RuleDef
from engine.feeds.demo import DemoMarket, demo_market

MAX_CHART_POINTS = 5000
MAX_LISTED_SIGNALS = 25


@dataclass
class PreviewResult:
    source: str
    symbol: str
    bars: int
    bar_seconds: int
    signals: list[dict[str, Any]]
    chart: dict[str, Any]
    symbols: list[str]
    first_time: str = ""
    last_time: str = ""

    @property
    def count(self) -> int:
        return len(self.signals)

    @property
    def listed(self) -> list[dict[str, Any]]:
        return self.signals[:MAX_LISTED_SIGNALS]


def _hms(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def demo_bars(symbol: str, count: int, seconds: int) -> Iterator[Bar]:
    """The last ``count`` bars of the synthetic market the demo feed runs."""
    # Ending at the current bar boundary, as the demo feed's warm-up history does.
    try:
        market = demo_market(symbol)  # a future or a pair on its own tick grid
    except ItemError:  # the preview form reads items first; a stock path is the fallback
        market = DemoMarket(symbol)
    now = int(datetime.now(UTC).timestamp())
    start = now - now % seconds - count * seconds
    return (market.bar(symbol, start + i * seconds, seconds) for i in range(count))


def simulate(rule: RuleDef, bars: Iterable[Bar], *, source: str) -> PreviewResult:
    """Run one :class:`SymbolMachine` per symbol; chart the first symbol's closes."""
    machines: dict[str, SymbolMachine] = {}
    signals: list[dict[str, Any]] = []
    closes: list[list[float]] = []
    markers: list[list[float | str]] = []
    first: Bar | None = None
    last: Bar | None = None
    count = 0
    for bar in bars:
        count += 1
        if first is None:
            first = bar
        last = bar
        machine = machines.get(bar.symbol)
        if machine is None:
            machine = machines[bar.symbol] = SymbolMachine(rule, bar.symbol)
        signal = machine.on_bar(bar)
        charted = bar.symbol == first.symbol
        if charted:
            closes.append([bar.time + bar.seconds, bar.close])
        if signal is not None:
            signals.append(
                {
                    "time": _hms(signal.close_time),
                    "symbol": signal.symbol,
                    "price": signal.price,
                    "side": signal.side,
                }
            )
            if charted:
                markers.append([signal.close_time, signal.price, signal.side or ""])
    if len(closes) > MAX_CHART_POINTS:
        closes = closes[-MAX_CHART_POINTS:]
        markers = [m for m in markers if float(m[0]) >= closes[0][0]]
    return PreviewResult(
        source=source,
        symbol=first.symbol if first else "",
        bars=count,
        bar_seconds=first.seconds if first else 0,
        signals=signals,
        chart={"symbol": first.symbol if first else "", "closes": closes, "markers": markers},
        symbols=list(machines),
        first_time=_hms(first.time) if first else "",
        last_time=_hms(last.time + last.seconds) if last else "",
    )
