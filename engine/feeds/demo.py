"""The demo feed: a deterministic synthetic market, so a fresh install shows live signals."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Protocol

from engine.core.bars import Bar
from engine.core.instruments import (
    DEFAULT_ROLL_DAYS,
    ContractInfo,
    Instrument,
    ItemError,
    parse_item,
)
from engine.feeds.base import (
    BarEvent,
    Feed,
    FeedEvent,
    InstrumentEvent,
    MarketEvent,
    StatusEvent,
)
from engine.feeds.hours import TradingHours, fallback_hours

logger = logging.getLogger(__name__)

TICKS_PER_UNIT = 100  # prices are whole ticks over this: 23873 / 100 is exactly 238.73
# Warm-up bars the demo makes for all symbols together, at most: the worker takes 100,000 in
# within a few seconds, while a rule with MA200@1h on 5-second bars asks 144,721 per symbol.
DEMO_WARMUP_BARS = 100_000
DEMO_HOURS_NOTE = " (the demo runs around the clock)"


def tick_price(ticks: int) -> float:
    """The price of ``ticks`` cents as the float nearest its decimal (``23873 * 0.01`` is
    238.73000000000002; the correctly rounded quotient prints as 238.73)."""
    return ticks / TICKS_PER_UNIT


class DemoMarket:
    """One symbol's price path: trends, chop and flat stretches, on the 0.01 tick grid.

    Deterministic for a (seed, symbol, first bar time): the same inputs give the same bars.
    """

    REGIMES = ("up", "down", "chop", "flat")
    DRIFT = {"up": 2, "down": -2, "chop": 0}  # ticks per bar

    def __init__(self, symbol: str, *, seed: int = 0) -> None:
        key = zlib.crc32(f"{seed}:{symbol}".encode())
        self.rng = random.Random(key)
        self.ticks = 5_000 + key % 45_000  # a start price between 50.00 and 500.00
        self.regime = "chop"
        self.regime_left = 0

    def _next_regime(self) -> None:
        self.regime = self.rng.choices(self.REGIMES, weights=(3, 3, 3, 1))[0]
        self.regime_left = self.rng.randint(12, 60)

    def bar(self, symbol: str, start: int, seconds: int) -> Bar:
        if self.regime_left <= 0:
            self._next_regime()
        self.regime_left -= 1
        open_ticks = self.ticks
        if self.regime == "flat":
            volume = float(self.rng.getrandbits(2) * 100)
            price = tick_price(open_ticks)
            return Bar(symbol, start, seconds, price, price, price, price, volume)
        # One draw per bar (a long warm-up makes many): 32 random bits cut into the step
        # (-4..4 ticks), the wicks (0..3 ticks each) and the volume (500..8000).
        bits = self.rng.getrandbits(32)
        bits, step = divmod(bits, 9)
        bits, above = divmod(bits, 4)
        bits, below = divmod(bits, 4)
        close_ticks = max(100, open_ticks + self.DRIFT[self.regime] + step - 4)
        high_ticks = max(open_ticks, close_ticks) + above
        low_ticks = max(1, min(open_ticks, close_ticks) - below)
        self.ticks = close_ticks
        volume = float((5 + bits % 76) * 100)
        return Bar(
            symbol,
            start,
            seconds,
            tick_price(open_ticks),
            tick_price(high_ticks),
            tick_price(low_ticks),
            tick_price(close_ticks),
            volume,
        )


class _Market(Protocol):
    def bar(self, symbol: str, start: int, seconds: int) -> Bar: ...


@dataclass(frozen=True, slots=True)
class DemoSpec:
    """Where an instrument's demo path starts and the grid it moves on."""

    level: str  # a decimal: the path wanders around it
    tick: str  # IB's minimum tick for the instrument, a decimal
    volume_unit: str = "0"  # "0": no volume (FX, indices)


# Futures: realistic levels (late 2026) and CME/Eurex ticks; quarterly (H M U Z) unless
# listed in MONTHLY_FUTURES.
FUTURES = {
    **dict.fromkeys(("ES", "MES"), DemoSpec("6000", "0.25", "10")),
    **dict.fromkeys(("NQ", "MNQ"), DemoSpec("21000", "0.25", "10")),
    "YM": DemoSpec("44000", "1", "10"),
    "MYM": DemoSpec("44000", "0.5", "10"),
    **dict.fromkeys(("RTY", "M2K"), DemoSpec("2400", "0.1", "10")),
    **dict.fromkeys(("CL", "MCL"), DemoSpec("70", "0.01", "10")),
    "NG": DemoSpec("3.5", "0.001", "10"),
    **dict.fromkeys(("GC", "MGC"), DemoSpec("2650", "0.1", "10")),
    "SI": DemoSpec("31", "0.005", "10"),
    "HG": DemoSpec("4.2", "0.0005", "10"),
    "ZN": DemoSpec("110", "0.015625", "10"),
    "ZB": DemoSpec("118", "0.03125", "10"),
    **dict.fromkeys(("6E", "M6E"), DemoSpec("1.08", "0.00005", "10")),
    "6J": DemoSpec("0.0067", "0.0000005", "10"),
    "6B": DemoSpec("1.27", "0.0001", "10"),
    "FDAX": DemoSpec("20000", "1", "10"),
    "FDXM": DemoSpec("20000", "1", "10"),
    "FESX": DemoSpec("4900", "1", "10"),
    "FGBL": DemoSpec("132", "0.01", "10"),
}
MONTHLY_FUTURES = frozenset({"CL", "MCL", "NG", "GC", "MGC", "SI", "HG"})
OTHER_FUTURE = DemoSpec("1000", "0.25", "10")
FX_LEVELS = {
    "EURUSD": "1.08",
    "GBPUSD": "1.27",
    "USDJPY": "150",
    "USDCHF": "0.88",
    "AUDUSD": "0.66",
    "USDCAD": "1.39",
    "NZDUSD": "0.6",
    "EURGBP": "0.85",
    "EURJPY": "162",
    "EURCHF": "0.94",
}
INDICES = {
    "SPX": "6000",
    "NDX": "21000",
    "RUT": "2400",
    "VIX": "15",
    "DAX": "20000",
    "ESTX50": "4900",
    "N225": "39000",
}
CRYPTO = {
    "BTC": DemoSpec("95000", "0.25", "0.01"),
    "ETH": DemoSpec("3500", "0.05", "0.01"),
    "LTC": DemoSpec("100", "0.01", "0.01"),
    "BCH": DemoSpec("450", "0.05", "0.01"),
}
# The currency a contract has when its item names none (IB's lookup would decide).
EXCHANGE_CURRENCIES = {
    **dict.fromkeys(("EUREX", "IBIS", "XETRA", "FWB", "SBF", "AEB", "BVME", "BM"), "EUR"),
    **dict.fromkeys(("LSE", "LSEETF", "ICEEU"), "GBP"),
    **dict.fromkeys(("TSEJ", "OSE.JPN"), "JPY"),
    "SEHK": "HKD",
    "ASX": "AUD",
    "TSE": "CAD",
    "EBS": "CHF",
}
MONTH_CODES = "FGHJKMNQUVXZ"


def demo_spec(instrument: Instrument) -> DemoSpec:
    """The level and tick of a non-stock instrument's demo path (stocks use
    :class:`DemoMarket`, on cents)."""
    if instrument.sec_type == "FUT":
        return FUTURES.get(instrument.symbol, OTHER_FUTURE)
    if instrument.sec_type == "CASH":
        jpy = instrument.currency == "JPY"
        level = FX_LEVELS.get(instrument.symbol + instrument.currency, "150" if jpy else "1")
        return DemoSpec(level, "0.005" if jpy else "0.00005")
    if instrument.sec_type == "IND":
        return DemoSpec(INDICES.get(instrument.symbol, "1000"), "0.01")
    if instrument.sec_type == "CRYPTO":
        return CRYPTO.get(instrument.symbol, DemoSpec("100", "0.01", "0.01"))
    return DemoSpec("100", "0.01", "100")


class TickMarket:
    """A future's, pair's, index's or coin's price path on its own tick grid, wandering
    around its spec's level (trends, chop and flat stretches, as :class:`DemoMarket`).

    Prices are whole ticks times the tick, divided as integers (correctly rounded), so each
    is the float nearest its decimal and prints without noise (``6001.25``, ``1.08005``).
    Deterministic for a (seed, symbol): the same inputs give the same bars.
    """

    REGIMES = ("up", "down", "chop", "flat")
    DRIFT = {"up": 2, "down": -2, "chop": 0}  # steps per bar

    def __init__(self, symbol: str, spec: DemoSpec, *, seed: int = 0) -> None:
        key = zlib.crc32(f"{seed}:{symbol}".encode())
        self.rng = random.Random(key)
        tick = Fraction(spec.tick)
        self.num, self.den = tick.numerator, tick.denominator
        self.base = max(1, round(Fraction(spec.level) / tick))
        # A step is about 0.002% of the price, at least one tick: ES 1 tick, NQ 2, BTC 8.
        self.unit = max(1, round(self.base * Fraction(2, 100_000)))
        spread = max(1, self.base // 100)  # start within 1% of the level
        self.ticks = self.base - spread + key % (2 * spread + 1)
        self.floor = max(1, self.base // 10)
        volume_unit = Fraction(spec.volume_unit)
        self.volume_num, self.volume_den = volume_unit.numerator, volume_unit.denominator
        self.regime = "chop"
        self.regime_left = 0

    def price(self, ticks: int) -> float:
        return ticks * self.num / self.den

    def _volume(self, units: int) -> float:
        return units * self.volume_num / self.volume_den

    def _next_regime(self) -> None:
        # Lean back towards the level once the path is 3% away from it.
        if self.ticks > self.base * 1.03:
            weights = (1, 5, 3, 1)
        elif self.ticks < self.base * 0.97:
            weights = (5, 1, 3, 1)
        else:
            weights = (3, 3, 3, 1)
        self.regime = self.rng.choices(self.REGIMES, weights=weights)[0]
        self.regime_left = self.rng.randint(12, 60)

    def bar(self, symbol: str, start: int, seconds: int) -> Bar:
        if self.regime_left <= 0:
            self._next_regime()
        self.regime_left -= 1
        open_ticks = self.ticks
        if self.regime == "flat":
            volume = self._volume(self.rng.getrandbits(2) * 10)
            price = self.price(open_ticks)
            return Bar(symbol, start, seconds, price, price, price, price, volume)
        bits = self.rng.getrandbits(32)
        bits, step = divmod(bits, 9)
        bits, above = divmod(bits, 4)
        bits, below = divmod(bits, 4)
        unit = self.unit
        close_ticks = max(self.floor, open_ticks + (self.DRIFT[self.regime] + step - 4) * unit)
        high_ticks = max(open_ticks, close_ticks) + above * unit
        low_ticks = max(1, min(open_ticks, close_ticks) - below * unit)
        self.ticks = close_ticks
        return Bar(
            symbol,
            start,
            seconds,
            self.price(open_ticks),
            self.price(high_ticks),
            self.price(low_ticks),
            self.price(close_ticks),
            self._volume(5 + bits % 76),
        )


def demo_market(symbol: str, *, seed: int = 0) -> _Market:
    """The demo's price path for a watchlist item: a stock's on cents (:class:`DemoMarket`,
    the same bars as before items had types), any other instrument's on its tick grid.
    ItemError for an item that can't be read."""
    instrument = parse_item(symbol)
    if instrument.sec_type == "STK":
        return DemoMarket(symbol, seed=seed)
    return TickMarket(symbol, demo_spec(instrument), seed=seed)


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def front_month(root: str, today: date, *, roll_days: int = DEFAULT_ROLL_DAYS) -> str:
    """The demo's front month as IB's local symbol (``ESZ6``): the nearest contract month
    (quarterly, or monthly for energy and metals) whose expiry — the third Friday, as for
    CME's equity index futures — is more than ``roll_days`` days away."""
    monthly = root in MONTHLY_FUTURES
    year, month = today.year, today.month
    while True:
        if (monthly or month % 3 == 0) and (third_friday(year, month) - today).days > roll_days:
            return f"{root}{MONTH_CODES[month - 1]}{year % 10}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def demo_contract(
    instrument: Instrument, today: date, *, roll_days: int = DEFAULT_ROLL_DAYS
) -> ContractInfo:
    """What the demo "resolves" an item to, as IB would: local symbol, exchange, currency,
    minimum tick."""
    sec_type, symbol = instrument.sec_type, instrument.symbol
    currency = instrument.currency or EXCHANGE_CURRENCIES.get(instrument.exchange, "USD")
    if sec_type == "STK":
        return ContractInfo(symbol, sec_type, instrument.exchange, currency, "0.01")
    tick = demo_spec(instrument).tick
    if sec_type == "FUT":
        local = front_month(symbol, today, roll_days=roll_days)
    elif sec_type in ("CASH", "CRYPTO"):
        local = f"{symbol}.{currency}"  # IB's local symbols: EUR.USD, BTC.USD
    else:
        local = symbol
    return ContractInfo(local, sec_type, instrument.exchange, currency, tick)


def _calendars(instruments: dict[str, Instrument]) -> dict[str, TradingHours]:
    return {symbol: fallback_hours(instrument) for symbol, instrument in instruments.items()}


class DemoFeed(Feed):
    """Bars of a synthetic market in real time (or ``speed`` times faster; 0 = no waiting).

    History for warm-up ends where live bars begin, at the current bar boundary. It holds at
    most :data:`DEMO_WARMUP_BARS` bars for all symbols together (a notice says so when the
    rules ask more), so that a long-timeframe rule still starts quickly.

    Each item is announced with an :class:`InstrumentEvent` (a future's front month by the
    demo's clock) and a :class:`MarketEvent` from the exchange calendar, again whenever that
    line changes; the demo makes bars around the clock all the same.
    """

    name = "demo"

    def __init__(
        self,
        *,
        speed: float = 1.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        max_bars: int | None = None,
        roll_days: int = DEFAULT_ROLL_DAYS,
    ) -> None:
        self.speed = speed
        self.seed = seed
        self.clock = clock
        self.max_bars = max_bars
        self.roll_days = roll_days
        self._closed = asyncio.Event()

    def _market_line(self, hours: TradingHours, now: float) -> tuple[bool, str]:
        when = datetime.fromtimestamp(now, UTC)
        is_open = hours.is_open(when)
        line = hours.line(when)
        return is_open, line if is_open else line + DEMO_HOURS_NOTE

    def _changes(
        self, hours: dict[str, TradingHours], lines: dict[str, tuple[bool, str]]
    ) -> list[MarketEvent]:
        """The items whose real market changed state or line, by the wall clock
        (microseconds per item)."""
        now = self.clock()
        changes = []
        for symbol, market_hours in hours.items():
            state = self._market_line(market_hours, now)
            if state != lines.get(symbol):
                lines[symbol] = state
                changes.append(MarketEvent(symbol, *state))
        return changes

    @staticmethod
    async def _calendars_of(
        pending: asyncio.Future[dict[str, TradingHours]],
    ) -> tuple[dict[str, TradingHours], StatusEvent | None]:
        try:
            return await pending, None
        except Exception as err:  # a demo without market hours still runs
            logger.warning("Demo market: no exchange calendars: %r", err)
            return {}, StatusEvent(
                "notice",
                f"Demo market: the exchange calendars could not be loaded ({err}); the tiles "
                "show no market hours.",
            )

    async def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        yield StatusEvent("connecting", "Starting the demo market (synthetic prices, not quotes).")
        markets: dict[str, _Market] = {}
        instruments: dict[str, Instrument] = {}
        for symbol in symbols:
            try:
                instruments[symbol] = parse_item(symbol)
            except ItemError as err:
                yield StatusEvent(
                    "notice",
                    f"{err} The demo market leaves it out; the other items run.",
                    symbol=symbol,
                    permanent=True,
                )
                continue
            markets[symbol] = demo_market(symbol, seed=self.seed)
        now = int(self.clock())
        today = datetime.fromtimestamp(now, UTC).date()
        for symbol, instrument in instruments.items():
            yield InstrumentEvent(
                symbol, demo_contract(instrument, today, roll_days=self.roll_days)
            )
        # The calendars take seconds the first time in a process (pandas, holiday rules):
        # built in a thread while the warm-up runs; their lines come before the first live
        # bar, and again whenever one changes.
        pending: asyncio.Future[dict[str, TradingHours]] | None = asyncio.ensure_future(
            asyncio.to_thread(_calendars, instruments)
        )
        hours: dict[str, TradingHours] = {}
        lines: dict[str, tuple[bool, str]] = {}
        live_start = now - now % bar_seconds
        history = min(warmup_bars, DEMO_WARMUP_BARS // max(1, len(markets)))
        t = live_start - history * bar_seconds
        if history:
            yield StatusEvent("warming_up", f"Demo market: {history} history bars per symbol.")
        rounds = 0
        while t < live_start:
            for symbol, market in markets.items():
                yield BarEvent(market.bar(symbol, t, bar_seconds), warmup=True)
            t += bar_seconds
            rounds += 1
            if rounds % 200 == 0:
                await asyncio.sleep(0)  # let the worker's heartbeat and commands through
                if pending is not None and pending.done():
                    hours, notice = await self._calendars_of(pending)
                    pending = None
                    if notice is not None:
                        yield notice
                    for change in self._changes(hours, lines):
                        yield change
        if pending is not None:
            hours, notice = await self._calendars_of(pending)
            pending = None
            if notice is not None:
                yield notice
        pace = "as fast as possible" if self.speed <= 0 else f"{self.speed:g}× real time"
        yield StatusEvent(
            "running",
            f"Demo market running: {len(markets)} symbols, {bar_seconds} s bars, {pace}.",
        )
        if history < warmup_bars:
            span = history * bar_seconds / 3600
            yield StatusEvent(
                "notice",
                f"Demo market: warm-up capped at {history:,} bars per symbol ({span:.3g} hours; "
                f"the rules need {warmup_bars:,}) so the demo starts quickly. "
                "Longer-timeframe indicators fill from live bars.",
            )
        real_start, emitted = self.clock(), 0
        while not self._closed.is_set():
            if self.max_bars is not None and emitted >= self.max_bars:
                return
            if self.speed > 0:
                # Bar t closes at t + bar_seconds in market time; market time runs `speed`
                # times faster than the wall clock from the moment live bars began.
                due = real_start + (t + bar_seconds - live_start) / self.speed
                delay = due - self.clock()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._closed.wait(), delay)
                    except TimeoutError:
                        pass
                    else:
                        return
            elif emitted % 500 == 0:
                await asyncio.sleep(0)
            for change in self._changes(hours, lines):
                yield change
            for symbol, market in markets.items():
                yield BarEvent(market.bar(symbol, t, bar_seconds))
            t += bar_seconds
            emitted += 1

    async def close(self) -> None:
        self._closed.set()
