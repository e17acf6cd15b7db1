"""What the fake TWS serves and records: symbols, history bars, subscriptions, requests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TRADING_HOURS = (
    "20261123:0400-20261123:2000;20261124:0400-20261124:2000;20261125:0400-20261125:2000"
)
DEFAULT_LIQUID_HOURS = (
    "20261123:0930-20261123:1600;20261124:0930-20261124:1600;20261125:0930-20261125:1600"
)

BarTuple = Sequence[float]

# IB's time zone ids for the presets below (what TWS sends in ``timeZoneId``).
HOURS_PRESETS: dict[str, tuple[str, str, str, str, str, bool, tuple[int, ...]]] = {
    # name: (timeZoneId, trading open, trading close, liquid open, liquid close,
    #        trading session opens the evening before, trading weekdays)
    "us_stock": ("US/Eastern", "0400", "2000", "0930", "1600", False, (0, 1, 2, 3, 4)),
    # CME Globex: 17:00 the evening before to 16:00 Chicago, Monday to Friday (a session
    # crossing midnight); RTH 08:30-15:00.
    "cme": ("US/Central", "1700", "1600", "0830", "1500", True, (0, 1, 2, 3, 4)),
    # IDEALPRO FX: 17:15 the evening before to 17:00 New York, Monday to Friday.
    "fx": ("US/Eastern", "1715", "1700", "1715", "1700", True, (0, 1, 2, 3, 4)),
    # Xetra: 08:00-17:30 with the auction, RTH 09:00-17:30 (IB's "MET").
    "xetra": ("MET", "0800", "1730", "0900", "1730", False, (0, 1, 2, 3, 4)),
    # Cboe index values (SPX): 08:30-15:15 Chicago, RTH 08:30-15:00.
    "cboe_index": ("US/Central", "0830", "1515", "0830", "1500", False, (0, 1, 2, 3, 4)),
    # PAXOS crypto: every day, midnight to midnight.
    "crypto": ("US/Central", "0000", "0000", "0000", "0000", True, (0, 1, 2, 3, 4, 5, 6)),
    # Tests: open around the clock every day, RTH too, for any security type (a test that
    # must not depend on the time of day it runs).
    "always": ("UTC", "0000", "0000", "0000", "0000", True, (0, 1, 2, 3, 4, 5, 6)),
}


def ib_hours(
    first: date,
    days: int,
    session: Callable[[date], tuple[str, str] | None],
    *,
    overnight: bool = False,
) -> str:
    """A schedule in IB's format (``tradingHours``/``liquidHours`` of contract details, TWS
    970+): ``20261207:0930-20261207:1600;20261205:CLOSED``. ``session(day)`` is the day's
    (open, close) as ``HHMM`` or None (closed); ``overnight``: it opens the evening before
    (``20261206:1700-20261207:1600``, CME Globex)."""
    entries: list[tuple[date, str]] = []
    covered: set[date] = set()
    for offset in range(days):
        day = first + timedelta(days=offset)
        hours = session(day)
        if hours is None:
            continue
        opens, closes = hours
        start = day - timedelta(days=1) if overnight else day
        entries.append((start, f"{start:%Y%m%d}:{opens}-{day:%Y%m%d}:{closes}"))
        covered |= {start, day}
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day not in covered:  # no session opens or ends that day
            entries.append((day, f"{day:%Y%m%d}:CLOSED"))
    return ";".join(text for _, text in sorted(entries))


def preset_hours(
    name: str, now: float, *, days_before: int = 3, days_after: int = 14
) -> tuple[str, str, str]:
    """(tradingHours, liquidHours, timeZoneId) of preset ``name`` (:data:`HOURS_PRESETS`)
    for the days around ``now`` (epoch seconds) at the exchange."""
    zone_id, t_open, t_close, l_open, l_close, overnight, weekdays = HOURS_PRESETS[name]
    zone = ZoneInfo({"MET": "Europe/Berlin", "US/Eastern": "America/New_York",
                     "US/Central": "America/Chicago"}.get(zone_id, zone_id))  # fmt: skip
    today = datetime.fromtimestamp(now, UTC).astimezone(zone).date()
    first = today - timedelta(days=days_before)
    count = days_before + days_after + 1

    def trading(day: date) -> tuple[str, str] | None:
        return (t_open, t_close) if day.weekday() in weekdays else None

    def liquid(day: date) -> tuple[str, str] | None:
        return (l_open, l_close) if day.weekday() in weekdays else None

    liquid_overnight = overnight and l_open >= l_close
    return (
        ib_hours(first, count, trading, overnight=overnight),
        ib_hours(first, count, liquid, overnight=liquid_overnight),
        zone_id,
    )


PACING_VIOLATION = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
# What the historical data service answers (162) during a competing live session.
COMPETING_HISTORY = (
    "Historical Market Data Service error message:No market data during competing live session"
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
    """One contract the gateway knows. ``symbol`` is the gateway's name for it (what
    ``push_bar``, ``deny_*`` and the logs use): ``AAPL``, ``ESZ6``, ``EUR.USD``; ``ib_symbol``
    IB's symbol (default ``symbol``: ``ES`` for ``ESZ6``, ``EUR`` for ``EUR.USD``).

    ``exchange`` is where it is listed (``CME``, ``IDEALPRO``, ``IBIS``; ``""``: a US stock
    routed by SMART); a stock also answers a lookup on SMART. ``trading_hours`` /
    ``liquid_hours`` in IB's format; None takes ``hours`` (a preset of
    :data:`HOURS_PRESETS`, ``us_stock`` by default) for the days around the gateway's clock.
    """

    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    time_zone_id: str = ""  # "": the preset's (US/Eastern for us_stock)
    trading_hours: str | None = None
    liquid_hours: str | None = None
    long_name: str = ""
    min_tick: float = 0.01
    # bar seconds -> bars sorted by time (5 s bars also collect every pushed bar)
    history: dict[int, list[HistBar]] = field(default_factory=dict)
    sec_type: str = "STK"
    ib_symbol: str = ""
    exchange: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    market_name: str = ""
    last_trade_date: str = ""  # YYYYMMDD (futures)
    multiplier: str = ""
    hours: str = "us_stock"
    # False: IB sends no volume (FX quotes, index values): -1 on the wire
    has_volume: bool = True

    def __post_init__(self) -> None:
        self.ib_symbol = (self.ib_symbol or self.symbol).upper()
        self.local_symbol = self.local_symbol or self.symbol
        if not self.trading_class:
            self.trading_class = (
                "NMS" if self.sec_type == "STK" and not self.exchange else (self.ib_symbol)
            )
        self.market_name = self.market_name or self.trading_class

    def schedule(self, now: float) -> tuple[str, str, str]:
        """(tradingHours, liquidHours, timeZoneId) as the gateway sends them at ``now``."""
        trading, liquid, zone = preset_hours(self.hours, now)
        return (
            trading if self.trading_hours is None else self.trading_hours,
            liquid if self.liquid_hours is None else self.liquid_hours,
            self.time_zone_id or zone,
        )

    def matches(
        self,
        *,
        symbol: str,
        sec_type: str,
        exchange: str,
        currency: str,
        last_trade_date: str = "",
        local_symbol: str = "",
    ) -> bool:
        """True if a contract-details request with these fields finds this contract."""
        if symbol.upper() != self.ib_symbol and not (
            not symbol and local_symbol and local_symbol == self.local_symbol
        ):
            return False
        if (sec_type or "STK") != self.sec_type:
            return False
        if currency and currency != self.currency:
            return False
        if last_trade_date and not self.last_trade_date.startswith(last_trade_date):
            return False
        if local_symbol and local_symbol != self.local_symbol:
            return False
        if not exchange or (exchange == "SMART" and self.sec_type == "STK"):
            return True
        return exchange in (self.exchange, self.primary_exchange)


@dataclass
class Subscription:
    conn_id: int
    req_id: int
    symbol: str
    what_to_show: str
    use_rth: bool
    con_id: int = 0
    # True: IB stopped serving it without a word (after 1101, a farm blip, a trade bust);
    # it stays silent until cancelled; a new subscription delivers.
    muted: bool = False


@dataclass
class Request:
    """One message a client sent, kept for assertions."""

    conn_id: int
    msg_id: int
    fields: list[str]


# The data types IB serves per security type (TWS API docs, "Historical Data Types" and
# "5 Second Real Time Bars"): FX has quotes only, crypto's trades come as AGGTRADES history.
HISTORY_TYPES = {
    "CASH": frozenset({"MIDPOINT", "BID", "ASK", "BID_ASK"}),
    "CRYPTO": frozenset({"AGGTRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"}),
}
REALTIME_TYPES = {"CASH": frozenset({"MIDPOINT", "BID", "ASK"})}
ANY_HISTORY_TYPE = frozenset({"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"})
ANY_REALTIME_TYPE = frozenset({"TRADES", "MIDPOINT", "BID", "ASK"})


def java_double(value: float) -> str:
    """``value`` as TWS (Java) writes a double: ``0.25``, ``5.0E-5``, ``1.0E-8``."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(float(value))
    mantissa, exponent = f"{value:.15e}".split("e")
    digits = mantissa.rstrip("0")
    if digits.endswith("."):
        digits += "0"
    return f"{digits}E{int(exponent)}"


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
