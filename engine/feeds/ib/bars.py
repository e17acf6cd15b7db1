"""The IB feed's bars: realtime subscriptions, warm-up history, backfill, 1-minute bars."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.core.bars import Bar, MinuteAggregator, time_problem
from engine.feeds.base import BarEvent, FeedEvent, StatusEvent
from engine.feeds.ib.connection import IBConnection
from engine.feeds.ib.errors import describe_ib_error, is_hard
from engine.feeds.ib.inbox import BadBar, BarArrived, Inbox
from engine.feeds.ib.library import REALTIME_BAR_SECONDS, RealtimeBars, StockContract

logger = logging.getLogger(__name__)

# IB serves at most 3600 S of 5-second history per request.
MAX_5S_HISTORY = 3600
MAX_1M_HISTORY = 86400
# How long a minute may stay open with no new 5 s bar before it is closed anyway.
MINUTE_FLUSH_AFTER = 10.0


@dataclass
class SymbolState:
    """One symbol of a run: its contract, its subscription and how far its bars got."""

    symbol: str
    contract: StockContract | None = None
    realtime: RealtimeBars | None = None  # the subscription of the current connection
    last_5s: int | None = None  # start of the last 5-second bar taken in
    last_yielded: int | None = None  # start of the last bar yielded, in run bar size
    last_arrival: float = 0.0  # monotonic time of the last realtime bar
    first_live: int | None = None  # start of the first bar of the current subscription
    warmed: bool = False
    dropped: bool = False
    stale_notified: bool = False
    notices: set[int] = field(default_factory=set)


class IBBars:
    """One run's bars in: 5-second realtime bars (into ``inbox``) and history, taken in once
    each, in the run's bar size (5 s, or 60 s built here from 5 s bars).

    History and contract-lookup errors arrive by IB callback, apart from the request's
    answer: the feed notes them with :meth:`note_request_error`."""

    def __init__(
        self,
        connection: IBConnection,
        inbox: Inbox,
        *,
        bar_seconds: int,
        use_rth: bool,
        clock: Callable[[], float],
    ) -> None:
        self.connection = connection
        self.inbox = inbox
        self.bar_seconds = bar_seconds
        self.use_rth = use_rth
        self.clock = clock
        self.aggregator = MinuteAggregator() if bar_seconds == 60 else None
        self._request_errors: dict[str, tuple[int, str]] = {}  # symbol -> last error

    # ---- request errors ------------------------------------------------------------------

    def note_request_error(self, symbol: str, code: int, message: str) -> None:
        self._request_errors[symbol] = (code, message)

    def pop_request_error(self, symbol: str) -> tuple[int, str] | None:
        """The last error noted for ``symbol`` since the last call, if any."""
        return self._request_errors.pop(symbol, None)

    # ---- realtime bars -------------------------------------------------------------------

    def subscribe(self, state: SymbolState) -> None:
        """(Re)subscribe ``state``'s realtime bars on the current connection."""
        client = self.connection.client
        contract = state.contract
        if client is None or contract is None:
            return
        self.unsubscribe(state)
        generation = self.connection.generation
        inbox = self.inbox
        symbol = state.symbol

        def on_bar(bar: Bar) -> None:
            problem = time_problem(bar.time)
            if problem is not None:
                # Taken in, it would block every later bar (older than it) and break the
                # close-time arithmetic: skip it and say so.
                inbox.put_nowait(BadBar(generation, symbol, problem))
                return
            if state.first_live is None:
                state.first_live = bar.time
            inbox.put_nowait(BarArrived(generation, symbol, bar))

        state.realtime = client.subscribe_realtime_bars(
            contract, use_rth=self.use_rth, on_bar=on_bar
        )
        state.first_live = None
        state.last_arrival = time.monotonic()

    def unsubscribe(self, state: SymbolState) -> None:
        """Cancel ``state``'s realtime bars, if subscribed."""
        handle, state.realtime = state.realtime, None
        client = self.connection.client
        if handle is not None and client is not None:
            client.cancel_realtime_bars(handle)

    def take(self, state: SymbolState, bar: Bar) -> list[Bar]:
        """Take one 5-second bar in; returns the closed bars of the run's size to yield."""
        if state.last_5s is not None and bar.time <= state.last_5s:
            return []
        if self.aggregator is not None and state.last_5s is None and bar.time % 60:
            # Joined mid-minute with no history to fill it: that minute would be partial.
            state.last_yielded = max(state.last_yielded or 0, bar.time - bar.time % 60)
        state.last_5s = bar.time
        out = [bar] if self.aggregator is None else self.aggregator.feed(bar)
        fresh = [b for b in out if state.last_yielded is None or b.time > state.last_yielded]
        if fresh:
            state.last_yielded = fresh[-1].time
        return fresh

    def flush(self, state: SymbolState) -> list[Bar]:
        """The minutes a silent symbol left open, closed now (1-minute runs only)."""
        if self.aggregator is None:
            return []
        out = []
        for minute in self.aggregator.flush(
            state.symbol, before=int(self.clock() - MINUTE_FLUSH_AFTER)
        ):
            if state.last_yielded is None or minute.time > state.last_yielded:
                state.last_yielded = minute.time
                out.append(minute)
        return out

    # ---- history -------------------------------------------------------------------------

    async def _history(
        self, state: SymbolState, duration: int, bar_seconds: int
    ) -> tuple[list[Bar], tuple[int, str] | None]:
        """The closed bars of the last ``duration`` seconds, and IB's error, if any."""
        client = self.connection.client
        if client is None or state.contract is None:
            raise ConnectionError("connection lost while loading history")
        self._request_errors.pop(state.symbol, None)
        bars = await client.history_bars(
            state.contract, bar_seconds=bar_seconds, duration=duration, use_rth=self.use_rth
        )
        if client is not self.connection.client:
            raise ConnectionError("connection lost while loading history")
        error = self._request_errors.pop(state.symbol, None)
        now = self.clock()
        return [b for b in bars if b.close_time <= now], error  # not the one still forming

    async def warm_up(self, state: SymbolState, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        """Yield ``state``'s warm-up bars from history (then backfill a 1-minute run's
        minute in progress)."""
        if warmup_bars <= 0:
            state.warmed = True
        else:
            seconds = self.bar_seconds
            cap = MAX_5S_HISTORY if seconds == 5 else MAX_1M_HISTORY
            first = min(cap, warmup_bars * seconds * 2 + 60)
            bars, error = await self._history(state, first, seconds)
            if len(bars) < warmup_bars and first < cap and not is_hard(error):
                # Few bars in the recent window (thin stock, pre-market): look further back.
                longer = cap if seconds == 5 else 5 * 86400
                bars, error = await self._history(state, longer, seconds)
            state.warmed = True
            if error is not None and not bars:
                sentence, _ = describe_ib_error(*error)
                yield StatusEvent(
                    "notice",
                    f"{state.symbol}: no warm-up history ({sentence}) Indicators fill from "
                    "live bars.",
                    symbol=state.symbol,
                )
            if state.first_live is not None:
                # Bars that also arrived live stay live: they may fire signals.
                bars = [b for b in bars if b.close_time <= state.first_live]
            bars = bars[-warmup_bars:]
            for bar in bars:
                yield BarEvent(bar, warmup=True)
            if bars:
                last = bars[-1]
                state.last_yielded = last.time
                state.last_5s = last.close_time - REALTIME_BAR_SECONDS
        if self.aggregator is not None and state.last_5s is not None:
            # The minute in progress: its 5 s bars so far, so the first live minute is whole.
            async for event in self.backfill(state):
                yield event

    async def backfill(self, state: SymbolState) -> AsyncIterator[FeedEvent]:
        """Yield the bars missed since the last one taken in (after a reconnect)."""
        if state.last_5s is None or state.contract is None:
            return
        gap = self.clock() - (state.last_5s + REALTIME_BAR_SECONDS)
        if gap < REALTIME_BAR_SECONDS:
            return
        duration = min(MAX_5S_HISTORY, int(math.ceil(gap / 5.0)) * 5 + 10)
        if gap > MAX_5S_HISTORY:
            logger.warning("%s: gap of %.0f s, backfilling the last hour", state.symbol, gap)
        bars, error = await self._history(state, duration, REALTIME_BAR_SECONDS)
        if error is not None and not bars:
            sentence, _ = describe_ib_error(*error)
            if "no historical bars" not in sentence:
                yield StatusEvent("notice", f"{state.symbol}: backfill failed: {sentence}",
                                  symbol=state.symbol)  # fmt: skip
        for bar in bars:
            for out in self.take(state, bar):
                yield BarEvent(out)
