"""The demo feed: a deterministic synthetic market, so a fresh install shows live signals."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence

from engine.core.bars import Bar
from engine.feeds.base import BarEvent, Feed, FeedEvent, StatusEvent

TICKS_PER_UNIT = 100  # prices are whole ticks over this: 23873 / 100 is exactly 238.73
# Warm-up bars the demo makes for all symbols together, at most: the worker takes 100,000 in
# within a few seconds, while a rule with MA200@1h on 5-second bars asks 144,721 per symbol.
DEMO_WARMUP_BARS = 100_000


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


class DemoFeed(Feed):
    """Bars of a synthetic market in real time (or ``speed`` times faster; 0 = no waiting).

    History for warm-up ends where live bars begin, at the current bar boundary. It holds at
    most :data:`DEMO_WARMUP_BARS` bars for all symbols together (a notice says so when the
    rules ask more), so that a long-timeframe rule still starts quickly.
    """

    name = "demo"

    def __init__(
        self,
        *,
        speed: float = 1.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        max_bars: int | None = None,
    ) -> None:
        self.speed = speed
        self.seed = seed
        self.clock = clock
        self.max_bars = max_bars
        self._closed = asyncio.Event()

    async def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        markets = {symbol: DemoMarket(symbol, seed=self.seed) for symbol in symbols}
        yield StatusEvent("connecting", "Starting the demo market (synthetic prices, not quotes).")
        now = int(self.clock())
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
            for symbol, market in markets.items():
                yield BarEvent(market.bar(symbol, t, bar_seconds))
            t += bar_seconds
            emitted += 1

    async def close(self) -> None:
        self._closed.set()
