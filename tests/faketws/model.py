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

PACING_VIOLATION = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
# IB's pacing rules for historical data (TWS API docs, "Historical Data Limitations").
IDENTICAL_WITHIN = 15.0  # no identical request within 15 s
SAME_CONTRACT_MAX = 5  # no six requests for one contract (and tick type) ...
SAME_CONTRACT_WITHIN = 2.0  # ... within 2 s
WINDOW_MAX = 60  # no more than 60 requests ...
WINDOW = 600.0  # ... within any ten minutes


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


def history_of(spec: SymbolSpec, seconds: int) -> list[HistBar]:
    """``spec``'s bars of ``seconds``: as configured, else built from the longest configured
    bar size that divides it (5-second bars include every pushed bar)."""
    if seconds in spec.history:
        return spec.history[seconds]
    sources = [size for size in spec.history if size < seconds and seconds % size == 0]
    if not sources:
        return []
    return aggregate(spec.history[max(sources)], seconds)


def pacing_violations(log: Sequence[dict[str, object]]) -> list[tuple[int, str]]:
    """The requests in ``log`` (the gateway's ``history_log``, each with its arrival time
    ``at`` in monotonic seconds) that break IB's pacing rules: (index, why)."""
    out: list[tuple[int, str]] = []
    seen: dict[tuple[object, ...], float] = {}
    by_contract: dict[tuple[object, object], list[float]] = {}
    times: list[float] = []
    for index, request in enumerate(log):
        at = float(request["at"])  # type: ignore[arg-type]
        key = tuple(request[k] for k in ("symbol", "end", "bar_size", "duration", "use_rth",
                                         "what_to_show"))  # fmt: skip
        if key in seen and at - seen[key] < IDENTICAL_WITHIN:
            out.append((index, f"identical to a request {at - seen[key]:.2f} s before"))
        seen[key] = at
        same = by_contract.setdefault((request["symbol"], request["what_to_show"]), [])
        same.append(at)
        if len(same) > SAME_CONTRACT_MAX:
            span = at - same[-SAME_CONTRACT_MAX - 1]
            if span < SAME_CONTRACT_WITHIN:
                out.append((index, f"the sixth request for {request['symbol']} in {span:.2f} s"))
        times.append(at)
        if len(times) > WINDOW_MAX and at - times[-WINDOW_MAX - 1] < WINDOW:
            span = at - times[-WINDOW_MAX - 1]
            out.append((index, f"the {WINDOW_MAX + 1}st request in {span:.0f} s"))
    return out
