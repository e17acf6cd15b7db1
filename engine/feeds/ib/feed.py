"""The IB feed: TWS / IB Gateway realtime bars, with reconnect, backfill and a watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from engine import markethours
from engine.core.bars import MinuteAggregator
from engine.feeds.base import BarEvent, FeedError, FeedEvent, StatusEvent
from engine.feeds.ib import library
from engine.feeds.ib.bars import IBBars
from engine.feeds.ib.connection import SymbolState
from engine.feeds.ib.errors import (
    NOTHING_LEFT,
    REALTIME_SYMBOL_CODES,
    ConnectFailure,
    describe_ib_error,
    format_seconds,
)

logger = logging.getLogger(__name__)

# Retry interval cap while the TWS port refuses connections (TWS not running yet).
REFUSED_RETRY = 2.0
# How long a minute may stay open with no new 5 s bar before it is closed anyway.
MINUTE_FLUSH_AFTER = 10.0


class IBFeed(IBBars):
    """Closed bars from TWS / IB Gateway: history warm-up, then 5-second realtime bars
    (aggregated to 1 minute locally when asked), with reconnect, backfill and a per-symbol
    staleness watchdog during NYSE hours.

    Settings (host, port, client id, ...) are the keyword arguments of
    :class:`~engine.feeds.ib.connection.IBConnection`."""

    name: ClassVar[str] = "ib"

    # ---- public ------------------------------------------------------------------------

    async def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        if bar_seconds not in (5, 60):
            raise FeedError(f"IB bars must be 5 or 60 seconds long, not {bar_seconds}.")
        self._closed = asyncio.Event()
        self._queue = asyncio.Queue()
        self._bar_seconds = bar_seconds
        self._aggregator = MinuteAggregator() if bar_seconds == 60 else None
        self._symbols = {}
        for raw in symbols:
            sym = raw.strip().upper()
            if sym and sym not in self._symbols:
                self._symbols[sym] = SymbolState(sym)
        # The exchange calendar imports pandas (~0.5 s): import it off the event loop.
        self._calendar_ready = asyncio.ensure_future(asyncio.to_thread(markethours.preload))
        try:
            async for event in self._run(warmup_bars):
                yield event
        finally:
            if self._calendar_ready is not None:
                self._calendar_ready.cancel()
            self._shutdown_connection()

    async def close(self) -> None:
        self._closed.set()
        self._shutdown_connection()
        self._queue.put_nowait(("closed",))

    # ---- connection loop ---------------------------------------------------------------

    async def _run(self, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        where = f"{self.host}:{self.port}"
        ever_connected = False
        backoff = 0.5
        id_in_use = 0
        announce = True
        while not self._closed.is_set():
            state = "reconnecting" if ever_connected else "connecting"
            if announce:
                yield StatusEvent(state, f"Connecting to TWS / IB Gateway at {where}…")
                announce = False
            try:
                await self._connect()
            except ConnectFailure as failure:
                if self._closed.is_set():
                    return
                if failure.code == 326:
                    id_in_use += 1
                    # Our own previous session may still hold the id for a moment.
                    if id_in_use >= 3:
                        yield StatusEvent("error", failure.message, permanent=True)
                        raise FeedError(failure.message, code=326, permanent=True) from None
                # A refused connection costs nothing: keep polling so bars flow again within
                # a few seconds of TWS coming back, however long it was away.
                delay = min(backoff, REFUSED_RETRY) if failure.refused else backoff
                yield StatusEvent(state, f"{failure.message} Retrying in {format_seconds(delay)}.")
                if await self._sleep(delay):
                    return
                backoff = min(backoff * 2, self.max_backoff)
                continue
            id_in_use = 0
            backoff = 0.5
            ever_connected = True
            try:
                async for event in self._session(warmup_bars):
                    yield event
            except ConnectionError as exc:
                logger.info("IB connection lost: %s", exc)
            if self._closed.is_set():
                return
            if not any(not s.dropped for s in self._symbols.values()):
                return
            self._shutdown_connection()
            yield StatusEvent(
                "reconnecting",
                f"Lost the connection to TWS / IB Gateway at {where}; reconnecting.",
            )
            if await self._sleep(backoff):
                return

    # ---- one connected session ---------------------------------------------------------

    async def _session(self, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        ib = self._ib
        pending = [s for s in self._symbols.values() if not s.dropped and s.contract is None]
        for event in await self._qualify(pending):
            yield event
        if all(s.dropped for s in self._symbols.values()):
            yield StatusEvent("error", NOTHING_LEFT, permanent=True)
            raise FeedError(NOTHING_LEFT, permanent=True)
        live = [s for s in self._symbols.values() if not s.dropped and s.contract is not None]
        if not live:
            # Only passing lookup failures (pacing, timeouts): reconnect and ask again.
            await self._sleep(5)
            raise ConnectionError("no contract could be looked up")
        cold = [s for s in live if not s.warmed]
        if cold:
            names = ", ".join(s.symbol for s in cold)
            yield StatusEvent("warming_up", f"Loading history for {names}…")
        for state in live:
            self._subscribe(state)
        for state in live:
            if state.warmed:
                async for event in self._backfill(state):
                    yield event
            else:
                async for event in self._warm_up(state, warmup_bars):
                    yield event
        if ib is not self._ib:
            raise ConnectionError("connection lost during warm-up")
        names = ", ".join(s.symbol for s in live if not s.dropped)
        size = "5-second" if self._bar_seconds == 5 else "1-minute"
        yield StatusEvent(
            "running", f"Receiving {size} bars for {names} from TWS at {self.host}:{self.port}."
        )
        market_open: bool | None = None
        last_tick = 0.0
        while not self._closed.is_set():
            try:
                item = await asyncio.wait_for(self._queue.get(), 1.0)
            except TimeoutError:
                item = ("tick",)
            kind = item[0]
            if kind == "closed":
                return
            if kind == "disconnected":
                if item[1] == self._generation:
                    raise ConnectionError("disconnected")
                continue
            if kind == "bar":
                _, generation, symbol, bar = item
                if generation != self._generation:
                    continue
                state = self._symbols[symbol]
                if state.dropped:
                    continue
                state.last_arrival = time.monotonic()
                state.stale_notified = False
                for out in self._take(state, bar):
                    yield BarEvent(out)
            elif kind == "bad_bar":
                _, generation, symbol, problem = item
                if generation == self._generation:
                    logger.warning("%s: skipped a realtime bar: %s", symbol, problem)
                    yield StatusEvent(
                        "notice", f"{symbol}: skipped a bar from TWS: {problem}.",
                        symbol=symbol,
                    )  # fmt: skip
            elif kind == "error":
                if item[1] != self._generation:
                    continue
                async for event in self._handle_error(*item[2:]):
                    yield event
                if not any(not s.dropped for s in self._symbols.values()):
                    yield StatusEvent("error", NOTHING_LEFT, permanent=True)
                    raise FeedError(NOTHING_LEFT, permanent=True)
            now = time.monotonic()
            if now - last_tick >= 1.0 and self._calendar_ready and self._calendar_ready.done():
                last_tick = now
                is_open = markethours.is_open(datetime.fromtimestamp(self.clock(), UTC))
                if is_open != market_open:
                    if not is_open:
                        message = markethours.closed_message(
                            datetime.fromtimestamp(self.clock(), UTC)
                        )
                        if not self.use_rth:
                            message = message[:-1] + " (extended-hours bars may still arrive)."
                        yield StatusEvent("notice", message)
                    elif market_open is not None:
                        yield StatusEvent("notice", "NYSE is open; bars should be arriving.")
                    market_open = is_open
                    for s in live:
                        s.last_arrival = now
                for event in self._watchdog(now, is_open):
                    yield event

    async def _qualify(self, states: list[SymbolState]) -> list[StatusEvent]:
        events: list[StatusEvent] = []
        ib = self._ib
        for state in states:
            self._request_errors.pop(state.symbol, None)
            stock = library.stock(state.symbol, self.exchange, self.currency)
            try:
                details = await asyncio.wait_for(ib.reqContractDetailsAsync(stock), 15)
            except TimeoutError:
                events.append(
                    StatusEvent(
                        "notice",
                        f"{state.symbol}: IB did not answer the contract lookup; "
                        "trying again on the next connection.",
                        symbol=state.symbol,
                    )
                )
                continue
            if ib is not self._ib:
                raise ConnectionError("connection lost while looking up contracts")
            matches = [d for d in details if d.contract and d.contract.secType == "STK"]
            if len(matches) == 1:
                contract = matches[0].contract
                contract.exchange = self.exchange
                state.contract = contract
                continue
            code, text = self._request_errors.pop(state.symbol, (200, ""))
            if matches:
                message = (
                    f"{state.symbol}: IB found {len(matches)} different stocks for this symbol "
                    f"on {self.exchange}/{self.currency}; it can't be streamed."
                )
                permanent = True
            else:
                sentence, permanent = describe_ib_error(code, text)
                message = f"{state.symbol}: {sentence}"
            if permanent:
                state.dropped = True
                message += " The other symbols continue."
            events.append(StatusEvent("notice", message, symbol=state.symbol, permanent=permanent))
        return events

    async def _handle_error(
        self, req_id: int, code: int, message: str
    ) -> AsyncIterator[StatusEvent]:
        if req_id == -1:
            if code == 326:
                return
            sentence, _ = describe_ib_error(code, message)
            if code == 1101:
                yield StatusEvent("notice", sentence)
                for state in self._symbols.values():
                    if not state.dropped:
                        self._subscribe(state)
                for state in self._symbols.values():
                    if not state.dropped:
                        async for event in self._backfill(state):
                            yield event
                yield StatusEvent("running", "Market data renewed after IB's reconnect.")
            elif code == 1100:
                yield StatusEvent("reconnecting", sentence)
            elif code == 1102:
                yield StatusEvent("running", sentence)
            elif code == 1300:
                yield StatusEvent("notice", sentence)
                raise ConnectionError("TWS socket port reset")
            elif code >= 2100 and code not in (2103, 2105, 2157):
                logger.info("IB notice %s: %s", code, message)
            else:
                yield StatusEvent("notice", sentence)
            return
        symbol = self._realtime_req.get(req_id)
        if symbol is None:
            return
        state = self._symbols[symbol]
        sentence, permanent = describe_ib_error(code, message)
        if code not in REALTIME_SYMBOL_CODES and not permanent:
            logger.info("IB error %s for %s: %s", code, symbol, message)
            return
        if permanent:
            state.dropped = True
            if state.realtime is not None and self._ib is not None:
                with contextlib.suppress(Exception):
                    self._ib.cancelRealTimeBars(state.realtime)
            state.realtime = None
            self._realtime_req.pop(req_id, None)
            sentence += " The other symbols continue."
        if code in state.notices and not permanent:
            return
        state.notices.add(code)
        yield StatusEvent("notice", f"{symbol}: {sentence}", symbol=symbol, permanent=permanent)

    def _watchdog(self, now: float, market_open: bool) -> list[FeedEvent]:
        events: list[FeedEvent] = []
        for state in self._symbols.values():
            if state.dropped or state.realtime is None:
                continue
            silent = now - state.last_arrival
            if self._aggregator is not None and silent > MINUTE_FLUSH_AFTER:
                for minute in self._aggregator.flush(
                    state.symbol, before=int(self.clock() - MINUTE_FLUSH_AFTER)
                ):
                    if state.last_yielded is None or minute.time > state.last_yielded:
                        state.last_yielded = minute.time
                        events.append(BarEvent(minute))
            if market_open and silent > self.stale_after:
                logger.info("%s silent for %.0f s; resubscribing", state.symbol, silent)
                if not state.stale_notified:
                    events.append(
                        StatusEvent(
                            "notice",
                            f"{state.symbol}: no bars from IB for {silent:.0f} s during "
                            "market hours; renewing the subscription.",
                            symbol=state.symbol,
                        )
                    )
                    state.stale_notified = True
                self._subscribe(state)
        return events
