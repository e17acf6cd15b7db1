"""What the fake TWS serves and records: symbols, history bars, subscriptions, requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_TRADING_HOURS = (
    "20261123:0400-20261123:2000;20261124:0400-20261124:2000;20261125:0400-20261125:2000"
)
DEFAULT_LIQUID_HOURS = (
    "20261123:0930-20261123:1600;20261124:0930-20261124:1600;20261125:0930-20261125:1600"
)

BarTuple = Sequence[float]


@dataclass
class HistBar:
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int

    @classmethod
    def of(cls, values: BarTuple | HistBar) -> HistBar:
        if isinstance(values, HistBar):
            return values
        t, o, h, low, c, v, *rest = values
        wap = float(rest[0]) if rest else round((o + h + low + c) / 4, 4)
        count = int(rest[1]) if len(rest) > 1 else 1
        return cls(int(t), float(o), float(h), float(low), float(c), float(v), wap, count)


@dataclass
class SymbolSpec:
    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    time_zone_id: str = "US/Eastern"
    trading_hours: str = DEFAULT_TRADING_HOURS
    liquid_hours: str = DEFAULT_LIQUID_HOURS
    long_name: str = ""
    min_tick: float = 0.01
    # bar seconds -> bars sorted by time (5 s bars also collect every pushed bar)
    history: dict[int, list[HistBar]] = field(default_factory=dict)


@dataclass
class Subscription:
    conn_id: int
    req_id: int
    symbol: str
    what_to_show: str
    use_rth: bool


@dataclass
class Request:
    """One message a client sent, kept for assertions."""

    conn_id: int
    msg_id: int
    fields: list[str]


def aggregate(bars: Sequence[HistBar], seconds: int) -> list[HistBar]:
    """Group bars into ``seconds``-long bars aligned to the epoch (partial last one kept)."""
    out: list[HistBar] = []
    for bar in bars:
        start = bar.time - bar.time % seconds
        if out and out[-1].time == start:
            last = out[-1]
            notional = last.wap * last.volume + bar.wap * bar.volume
            last.high = max(last.high, bar.high)
            last.low = min(last.low, bar.low)
            last.close = bar.close
            last.volume += bar.volume
            last.count += bar.count
            last.wap = round(notional / last.volume, 4) if last.volume else bar.wap
        else:
            out.append(HistBar(start, bar.open, bar.high, bar.low, bar.close, bar.volume,
                               bar.wap, bar.count))  # fmt: skip
    return out
