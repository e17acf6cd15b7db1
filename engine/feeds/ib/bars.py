"""The IB feed's bars: realtime subscriptions, warm-up history, backfill, 1-minute bars."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.core.bars import Bar, MinuteAggregator, time_problem
from engine.core.instruments import Instrument
from engine.feeds.base import BarEvent, FeedEvent, StatusEvent
from engine.feeds.ib.connection import IBConnection
from engine.feeds.ib.errors import describe_ib_error, is_no_data, is_pacing
from engine.feeds.ib.inbox import BadBar, BarArrived, Inbox
from engine.feeds.ib.library import REALTIME_BAR_SECONDS, IBContract, RealtimeBars
from engine.feeds.ib.pacing import PACING_RETRIES, PACING_WAIT, WARMUP_REQUESTS, HistoryPacer

logger = logging.getLogger(__name__)

# The longest request IB serves per bar size (TWS API docs, "Historical Data Limitations",
# step sizes: a duration of 3600 S allows 5-second bars, 1 D allows 1-minute bars).
MAX_5S_HISTORY = 3600
MAX_1M_HISTORY = 86400
# The map of where history has bars: hourly bars of 30 days (IB's step sizes allow 1-hour
# bars for 1 M; the example request of the ib_async and ib_insync READMEs), asked when the
# walk back meets a window with no bars.
MAP_BAR_SECONDS = 3600
MAP_DURATION = 30 * 86400
# How long a minute may stay open with no new 5 s bar before it is closed anyway.
MINUTE_FLUSH_AFTER = 10.0


@dataclass
class SymbolState:
    """One item of a run: its contract, its subscription, how far its bars got and its
    market hours. ``symbol`` is the item text (``ES:FUT:CME``), the name its bars carry."""

    symbol: str
    instrument: Instrument | None = None
    contract: IBContract | None = None
    realtime: RealtimeBars | None = None  # the subscription of the current connection
    last_5s: int | None = None  # start of the last 5-second bar taken in
    last_yielded: int | None = None  # start of the last bar yielded, in run bar size
    last_arrival: float = 0.0  # monotonic time of the last realtime bar
    first_live: int | None = None  # start of the first bar of the current subscription
    warmed: bool = False
    warmup_notice: StatusEvent | None = None  # for after the warm-up: history cut short
    dropped: bool = False
    stale_notified: bool = False
    notices: set[int] = field(default_factory=set)
    hours: Any = None  # engine.feeds.hours.TradingHours of the contract, built per day
    hours_key: tuple[int, str] | None = None  # (con_id, exchange date) ``hours`` was built for
    market: tuple[bool, str] | None = None  # (is open, line) last reported
    refreshing: bool = False  # a contract-details refresh (new day's hours) is under way
    roll_to: int | None = None  # a future's newer front month (con_id), told once
    roll_notice: str = ""  # to yield: the front month changed during the run
    # The flow of its bars (issue 14): when the last realtime bar came (monotonic, and the
    # feed's clock; ``last_arrival`` is also reset by a resubscription, these are not)
    last_bar_mono: float = 0.0
    last_bar_clock: float | None = None
    live_times: deque[int] = field(default_factory=lambda: deque(maxlen=64))  # live bar starts
    last_history: int | None = None  # start of the last bar taken from history
    ignored: Counter[str] = field(default_factory=Counter)  # realtime bars not taken, by why
    ignored_told: int = 0  # how many of them a notice has counted
    ignored_told_at: float = 0.0  # monotonic time of that notice
    renewals: int = 0  # watchdog resubscriptions since the last bar (they back off)
    competing: bool = False  # IB sends nothing: a competing live session (10197)
    refused_reason: str = ""  # why IB refuses it (permanent), for the stream state
    recheck_until: float = 0.0  # monotonic: a short staleness window after a farm blip
    flow_from: float = 0.0  # monotonic: bars are due from then (session start, market open)
    stream: tuple[str, str] | None = None  # (stream, reason) last reported
    backfilled: int = 0  # bars taken from history after the warm-up (for the sentences)

    def __post_init__(self) -> None:
        if self.instrument is None:
            self.instrument = Instrument(self.symbol)


class Answer(NamedTuple):
    """IB's answer to one history request: the closed bars, and its error if any."""

    bars: list[Bar]
    error: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class HistoryProgress:
    """The warm-up is about to send history request ``request`` of about ``planned``."""

    request: int
    planned: int
    bars: int


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """A warm-up's history: ``bars`` oldest first, without duplicates; the last request's
    error, if any; how many requests it took; and why it stopped short (``budget``,
    ``error``, ``exhausted``: IB has no older bars; empty if it did not)."""

    bars: list[Bar]
    error: tuple[int, str] | None
    requests: int
    stop: str


def format_span(seconds: int) -> str:
    """``27000`` → ``7.5 hours``; under an hour in minutes."""
    if seconds < 3600:
        minutes = max(1, round(seconds / 60))
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600, 1)
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


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
        pacer: HistoryPacer | None = None,
    ) -> None:
        self.connection = connection
        self.pacer = pacer or HistoryPacer()
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

    def take(self, state: SymbolState, bar: Bar, *, live: bool = True) -> list[Bar]:
        """Take one 5-second bar in (``live``: realtime, else from history); returns the
        closed bars of the run's size to yield."""
        if state.last_5s is not None and bar.time <= state.last_5s:
            return []
        if live:
            state.live_times.append(bar.time)
        else:
            state.last_history = bar.time
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
        self, state: SymbolState, duration: int, bar_seconds: int, end: int | None = None
    ) -> tuple[list[Bar], tuple[int, str] | None]:
        """The closed bars of the ``duration`` seconds before ``end`` (None: now), and IB's
        error, if any. Waits first as long as IB's pacing asks."""
        client = self.connection.client
        contract = state.contract
        if client is None or contract is None:
            raise ConnectionError("connection lost while loading history")
        key = (contract.con_id, bar_seconds, duration, end, self.use_rth)
        while (delay := self.pacer.delay(key, contract.con_id)) > 0:
            if delay > 1:
                logger.info("%s: waiting %.1f s for IB's history pacing", state.symbol, delay)
            await asyncio.sleep(min(delay, 0.5))
            if client is not self.connection.client:
                raise ConnectionError("connection lost while loading history")
        self.pacer.record(key, contract.con_id)
        self._request_errors.pop(state.symbol, None)
        bars = await client.history_bars(
            contract, bar_seconds=bar_seconds, duration=duration, use_rth=self.use_rth, end=end
        )
        if client is not self.connection.client:
            raise ConnectionError("connection lost while loading history")
        error = self._request_errors.pop(state.symbol, None)
        now = self.clock()
        return [b for b in bars if b.close_time <= now], error  # not the one still forming

    async def _paced(
        self, state: SymbolState, duration: int, bar_seconds: int, end: int | None = None
    ) -> AsyncIterator[StatusEvent | Answer]:
        """:meth:`_history`, asked again after a pacing violation (IB counts its pacing
        with other programs' requests too): yields a notice before each wait, then the
        answer."""
        for attempt in range(PACING_RETRIES + 1):
            bars, error = await self._history(state, duration, bar_seconds, end)
            if bars or not is_pacing(error) or attempt == PACING_RETRIES:
                yield Answer(bars, error)
                return
            wait = PACING_WAIT * (1 if attempt < 2 else 2 ** (attempt - 1))
            self.pacer.hold(wait)  # every request waits: the refused one counts on IB's side
            yield StatusEvent(
                "notice",
                f"{state.symbol}: IB refused a history request (pacing violation); waiting "
                f"{wait:g} s as IB's rules ask, then asking again.",
                symbol=state.symbol,
            )

    async def _load_history(
        self, state: SymbolState, warmup_bars: int, budget: int
    ) -> AsyncIterator[HistoryProgress | HistoryResult | StatusEvent]:
        """Walk back through IB's history until ``warmup_bars`` bars are in, IB has no
        more, or ``budget`` requests are spent: the most recent window first, then windows
        of IB's longest duration, each ending where the bars so far begin. A window with no
        bars (a night, a weekend) makes it ask once for a map of the hours that have bars
        and jump over the gaps with it. Yields the progress before each request after the
        first, then the result."""
        seconds = self.bar_seconds
        window = MAX_5S_HISTORY if seconds == 5 else MAX_1M_HISTORY
        first = min(window, warmup_bars * seconds * 2 + 60)
        show_progress = warmup_bars * seconds > window  # more than one request's worth
        async for got in self._paced(state, first, seconds):
            if isinstance(got, StatusEvent):
                yield got
            else:
                bars, error = got
        chunks = [bars]  # newest first
        have = len(bars)
        # Where the next window ends: the first bar so far, else the first window's start,
        # rounded up to a bar boundary, so that the bar across it is in one window or both.
        # The clock's fraction counts: truncated, a window starting at 21:28:00.7 would be
        # followed by one ending at 21:28:00, and the bar starting then in neither.
        end = bars[0].time if bars else math.ceil((self.clock() - first) / seconds) * seconds
        requests = 1
        hours: list[int] | None = None  # starts of the hours that have bars, oldest first
        hours_from = 0  # where the map of ``hours`` begins
        need_map = False
        stop = ""

        def progress() -> HistoryProgress | None:
            if not show_progress:
                return None
            left = math.ceil((warmup_bars - have) * seconds / window) + need_map
            return HistoryProgress(requests + 1, min(budget, requests + max(1, left)), have)

        while have < warmup_bars:
            if error is not None and not is_no_data(error):
                stop = "error"
                break
            error = None
            if requests >= budget:
                stop = "budget"
                break
            if need_map:
                if (step := progress()) is not None:
                    yield step
                # Up to the end of the hour: the hour ``end`` falls in may have bars before it.
                map_end = -(-end // MAP_BAR_SECONDS) * MAP_BAR_SECONDS
                async for got in self._paced(state, MAP_DURATION, MAP_BAR_SECONDS, map_end):
                    if isinstance(got, StatusEvent):
                        yield got
                    else:
                        found, error = got
                requests += 1
                hours, hours_from = [b.time for b in found], map_end - MAP_DURATION
                need_map = False
                if not hours:
                    stop = "exhausted" if error is None or is_no_data(error) else "error"
                    break
                continue
            if hours is not None:
                target = max((min(t + MAP_BAR_SECONDS, end) for t in hours if t < end), default=0)
                if not target:
                    if end > hours_from:  # no bars in the map's 30 days before ``end``
                        stop = "exhausted"
                        break
                    hours, need_map = None, True  # further back than the map goes
                    continue
                end = target
            if (step := progress()) is not None:
                yield step
            async for got in self._paced(state, window, seconds, end):
                if isinstance(got, StatusEvent):
                    yield got
                else:
                    bars, error = got
            requests += 1
            if bars:
                chunks.append(bars)
                have += len(bars)
                end = bars[0].time
            else:
                end -= window
                need_map = hours is None
        merged: dict[int, Bar] = {}
        for chunk in reversed(chunks):
            for bar in chunk:
                merged.setdefault(bar.time, bar)
        yield HistoryResult([merged[t] for t in sorted(merged)], error, requests, stop)

    async def warm_up(
        self,
        state: SymbolState,
        warmup_bars: int,
        *,
        budget: int = WARMUP_REQUESTS,
        symbols: int = 1,
    ) -> AsyncIterator[FeedEvent]:
        """Yield ``state``'s warm-up bars from history, from at most ``budget`` requests
        (then backfill a 1-minute run's minute in progress). ``symbols`` warm up together,
        sharing IB's pacing. A notice for after the warm-up (history cut short) goes to
        ``state.warmup_notice``."""
        symbol = state.symbol
        if warmup_bars <= 0:
            state.warmed = True
        else:
            result: HistoryResult | None = None
            async for step in self._load_history(state, warmup_bars, budget):
                if isinstance(step, HistoryProgress):
                    yield StatusEvent(
                        "notice",
                        f"{symbol}: warm-up {step.request} of {step.planned} history requests "
                        f"({step.bars:,} of {warmup_bars:,} bars so far)…",
                        symbol=symbol,
                    )
                elif isinstance(step, StatusEvent):  # a pacing wait
                    yield step
                else:
                    result = step
            assert result is not None
            state.warmed = True
            bars, error = result.bars, result.error
            if error is not None and not bars:
                sentence, _ = describe_ib_error(*error)
                yield StatusEvent(
                    "notice",
                    f"{symbol}: no warm-up history ({sentence}) Indicators fill from live bars.",
                    symbol=symbol,
                )
            if state.first_live is not None:
                # Bars that also arrived live stay live: they may fire signals.
                bars = [b for b in bars if b.close_time <= state.first_live]
            bars = bars[-warmup_bars:]
            if result.stop and bars and len(bars) < warmup_bars:
                state.warmup_notice = self._short_notice(
                    symbol, len(bars), warmup_bars, result, budget, symbols
                )
            for bar in bars:
                yield BarEvent(bar, warmup=True)
            if bars:
                last = bars[-1]
                state.last_yielded = last.time
                state.last_5s = last.close_time - REALTIME_BAR_SECONDS
                state.last_history = state.last_5s
        if self.aggregator is not None and state.last_5s is not None:
            # The minute in progress: its 5 s bars so far, so the first live minute is whole.
            async for event in self.backfill(state):
                yield event

    def _short_notice(
        self,
        symbol: str,
        count: int,
        warmup_bars: int,
        result: HistoryResult,
        budget: int,
        symbols: int,
    ) -> StatusEvent:
        """The notice for a warm-up that got fewer bars than the rules need, and why."""
        loaded = (
            f"{symbol}: warm-up loaded {format_span(count * self.bar_seconds)} of history "
            f"({count:,} of the {warmup_bars:,} bars the rules need)"
        )
        if result.stop == "budget":
            several = f" with {symbols} symbols" if symbols > 1 else ""
            why = f"; IB's pacing allows {budget} history requests per symbol{several}."
        elif result.stop == "error" and result.error is not None:
            why = f"; then IB answered: {describe_ib_error(*result.error)[0]}"
        else:
            why = "; IB has no older bars."
        return StatusEvent(
            "notice",
            f"{loaded}{why} Longer-timeframe indicators fill from live bars.",
            symbol=symbol,
        )

    async def backfill(
        self, state: SymbolState, *, before: int | None = None
    ) -> AsyncIterator[FeedEvent]:
        """Yield the bars missed since the last one taken in (after a reconnect, a silent
        stretch, a gap in the realtime bars: those starting ``before`` the live bar that
        showed it); ``state.backfilled`` counts them."""
        if state.last_5s is None or state.contract is None:
            return
        now = self.clock()
        gap = now - (state.last_5s + REALTIME_BAR_SECONDS)
        if gap < REALTIME_BAR_SECONDS:
            return
        duration = min(MAX_5S_HISTORY, int(math.ceil(gap / 5.0)) * 5 + 10)
        if gap > MAX_5S_HISTORY:
            logger.warning("%s: gap of %.0f s, backfilling the last hour", state.symbol, gap)
        # An explicit end (the last whole 5 s): two backfills are never IB-identical requests.
        end = int(now) // REALTIME_BAR_SECONDS * REALTIME_BAR_SECONDS
        bars: list[Bar] = []
        error: tuple[int, str] | None = None
        async for got in self._paced(state, duration, REALTIME_BAR_SECONDS, end):
            if isinstance(got, StatusEvent):
                yield got
            else:
                bars, error = got
        if error is not None and not bars:
            sentence, _ = describe_ib_error(*error)
            if "no historical bars" not in sentence:
                yield StatusEvent("notice", f"{state.symbol}: backfill failed: {sentence}",
                                  symbol=state.symbol)  # fmt: skip
        for bar in bars:
            if before is not None and bar.time >= before:
                break
            for out in self.take(state, bar, live=False):
                state.backfilled += 1
                yield BarEvent(out)
