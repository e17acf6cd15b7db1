"""The IB feed's bars: realtime subscriptions, warm-up history, backfill, 1-minute bars."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from engine.core.bars import Bar, time_problem
from engine.feeds.base import BarEvent, FeedEvent, StatusEvent
from engine.feeds.ib import library
from engine.feeds.ib.connection import IBConnection, SymbolState
from engine.feeds.ib.errors import describe_ib_error, is_hard
from engine.feeds.ib.library import REALTIME_BAR_SECONDS

logger = logging.getLogger(__name__)

# IB serves at most 3600 S of 5-second history per request.
MAX_5S_HISTORY = 3600
MAX_1M_HISTORY = 86400


class IBBars(IBConnection):
    """Bars in: 5-second realtime bars and history, taken in once each, in the run's size."""

    def _subscribe(self, state: SymbolState) -> None:
        ib = self._ib
        if ib is None or state.contract is None:
            return
        old = state.realtime
        if old is not None:
            self._realtime_req.pop(old.reqId, None)
            with contextlib.suppress(Exception):
                ib.cancelRealTimeBars(old)
        generation = self._generation
        bars = ib.reqRealTimeBars(state.contract, REALTIME_BAR_SECONDS, "TRADES", self.use_rth)
        state.realtime = bars
        state.first_live = None
        state.last_arrival = time.monotonic()
        self._realtime_req[bars.reqId] = state.symbol
        symbol = state.symbol

        def on_update(bar_list: Any, has_new_bar: bool) -> None:
            if not has_new_bar or not bar_list:
                return
            rt = bar_list[-1]
            # The library keeps every bar; the engine keeps its own bounded buffers.
            bar_list.clear()
            bar = library.realtime_bar(symbol, rt)
            problem = time_problem(bar.time)
            if problem is not None:
                # Taken in, it would block every later bar (older than it) and break the
                # close-time arithmetic: skip it and say so.
                self._queue.put_nowait(("bad_bar", generation, symbol, problem))
                return
            if state.first_live is None:
                state.first_live = bar.time
            self._queue.put_nowait(("bar", generation, symbol, bar))

        bars.updateEvent += on_update

    def _take(self, state: SymbolState, bar: Bar) -> list[Bar]:
        """Take one 5-second bar in; returns the closed bars of the run's size to yield."""
        if state.last_5s is not None and bar.time <= state.last_5s:
            return []
        if self._aggregator is not None and state.last_5s is None and bar.time % 60:
            # Joined mid-minute with no history to fill it: that minute would be partial.
            state.last_yielded = max(state.last_yielded or 0, bar.time - bar.time % 60)
        state.last_5s = bar.time
        out = [bar] if self._aggregator is None else self._aggregator.feed(bar)
        fresh = [b for b in out if state.last_yielded is None or b.time > state.last_yielded]
        if fresh:
            state.last_yielded = fresh[-1].time
        return fresh

    async def _history(
        self, state: SymbolState, duration: int, bar_size: str
    ) -> tuple[list[Bar], tuple[int, str] | None]:
        ib = self._ib
        seconds = 5 if bar_size == "5 secs" else 60
        self._request_errors.pop(state.symbol, None)
        unit = f"{duration} S" if duration <= 86400 else f"{math.ceil(duration / 86400)} D"
        rows = await ib.reqHistoricalDataAsync(
            state.contract,
            endDateTime="",
            durationStr=unit,
            barSizeSetting=bar_size,
            whatToShow="TRADES",
            useRTH=self.use_rth,
            formatDate=2,
        )
        if ib is not self._ib:
            raise ConnectionError("connection lost while loading history")
        error = self._request_errors.pop(state.symbol, None)
        return library.history_bars(state.symbol, rows, seconds, self.clock()), error

    async def _warm_up(self, state: SymbolState, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        if warmup_bars <= 0:
            state.warmed = True
        else:
            seconds = self._bar_seconds
            bar_size = "5 secs" if seconds == 5 else "1 min"
            cap = MAX_5S_HISTORY if seconds == 5 else MAX_1M_HISTORY
            first = min(cap, warmup_bars * seconds * 2 + 60)
            bars, error = await self._history(state, first, bar_size)
            if len(bars) < warmup_bars and first < cap and not is_hard(error):
                # Few bars in the recent window (thin stock, pre-market): look further back.
                longer = cap if seconds == 5 else 5 * 86400
                bars, error = await self._history(state, longer, bar_size)
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
        if self._aggregator is not None and state.last_5s is not None:
            # The minute in progress: its 5 s bars so far, so the first live minute is whole.
            async for event in self._backfill(state):
                yield event

    async def _backfill(self, state: SymbolState) -> AsyncIterator[FeedEvent]:
        """Yield the bars missed since the last one taken in (after a reconnect)."""
        if state.last_5s is None or state.contract is None:
            return
        gap = self.clock() - (state.last_5s + REALTIME_BAR_SECONDS)
        if gap < REALTIME_BAR_SECONDS:
            return
        duration = min(MAX_5S_HISTORY, int(math.ceil(gap / 5.0)) * 5 + 10)
        if gap > MAX_5S_HISTORY:
            logger.warning("%s: gap of %.0f s, backfilling the last hour", state.symbol, gap)
        bars, error = await self._history(state, duration, "5 secs")
        if error is not None and not bars:
            sentence, _ = describe_ib_error(*error)
            if "no historical bars" not in sentence:
                yield StatusEvent("notice", f"{state.symbol}: backfill failed: {sentence}",
                                  symbol=state.symbol)  # fmt: skip
        for bar in bars:
            for out in self._take(state, bar):
                yield BarEvent(out)
