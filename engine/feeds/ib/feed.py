"""The IB feed: TWS / IB Gateway realtime bars, with reconnect, backfill and a watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from engine.core.bars import Bar
from engine.core.instruments import DEFAULT_ROLL_DAYS, ItemError, parse_item
from engine.feeds.base import (
    BarEvent,
    Feed,
    FeedError,
    FeedEvent,
    InstrumentEvent,
    MarketEvent,
    StatusEvent,
    StreamEvent,
)
from engine.feeds.hours import TradingHours, fallback_hours, venue_name
from engine.feeds.ib.bars import MINUTE_FLUSH_AFTER, IBBars, SymbolState
from engine.feeds.ib.connection import IBConnection
from engine.feeds.ib.contracts import (
    ContractChoiceError,
    choose_contract,
    exchange_date,
    front_month,
    unknown_sentence,
)
from engine.feeds.ib.errors import (
    COMPETING_SESSION,
    FARM_OK_CODES,
    MARKET_FARM_OK,
    NOTHING_LEFT,
    REALTIME_SYMBOL_CODES,
    TRADE_BUST,
    ConnectFailure,
    client_id_taken_message,
    describe_ib_error,
    format_seconds,
)
from engine.feeds.ib.health import (
    bars_text,
    ignore_reason,
    ignored_notice,
    restart_sentence,
    stream_of,
)
from engine.feeds.ib.inbox import (
    BadBar,
    BarArrived,
    Closed,
    Disconnected,
    ErrorArrived,
    Inbox,
    InboxItem,
)
from engine.feeds.ib.library import REALTIME_BAR_SECONDS, IBContract
from engine.feeds.ib.pacing import HistoryPacer, warmup_budget

logger = logging.getLogger(__name__)

# Retry interval cap while the TWS port refuses connections (TWS not running yet).
REFUSED_RETRY = 2.0
# After a market-data farm blip or a trade bust, a stream silent this long is renewed at once
# (IB sends a bar every 5 s), for RECHECK_WINDOW seconds.
RECHECK_AFTER = 7.0
RECHECK_WINDOW = 30.0
# During a competing session IB sends nothing: ask again this rarely (no resubscribe storm).
COMPETING_RETRY = 60.0
NEXT_CLIENT_IDS = 9  # with the setting on: client id, then up to this many next ones


class IBFeed(Feed):
    """Closed bars from TWS / IB Gateway for watchlist items of any type (stocks, futures'
    front month, FX pairs, indices, crypto): history warm-up, then 5-second realtime bars
    (aggregated to 1 minute locally when asked), with reconnect, backfill, each item's market
    hours from its contract details, and a per-item staleness watchdog while its market is
    open. ``use_rth``: regular trading hours only (IB's liquid hours); ``roll_days``: a future
    streams the nearest month whose last trade date is more than that many days away.

    It connects through an :class:`~engine.feeds.ib.connection.IBConnection` and takes bars
    in through an :class:`~engine.feeds.ib.bars.IBBars` (one per run). IB's callbacks put
    what they have into the inbox (a queue); the session loop here takes it out."""

    name: ClassVar[str] = "ib"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 17,
        use_rth: bool = False,
        roll_days: int = DEFAULT_ROLL_DAYS,
        next_client_id: bool = False,
        restart_time: str = "23:45",
        restart_zone: str = "America/New_York",
        connect_timeout: float = 10,
        max_backoff: float = 10.0,
        stale_after: float = 15.0,
        clock: Callable[[], float] = time.time,
    ):
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.use_rth = use_rth
        self.roll_days = max(0, int(roll_days))
        self.next_client_id = bool(next_client_id)
        self.restart_time = restart_time
        self.restart_zone = restart_zone
        self.connect_timeout = connect_timeout
        self.max_backoff = min(max(max_backoff, 0.1), 10.0)
        self.stale_after = stale_after
        self.clock = clock
        self.connection = IBConnection(
            host=host,
            port=port,
            client_id=client_id,
            connect_timeout=connect_timeout,
            on_error=self._on_error,
            on_disconnected=self._on_disconnected,
        )
        self._closed = asyncio.Event()
        self._inbox: Inbox = asyncio.Queue()
        self._symbols: dict[str, SymbolState] = {}
        # IB paces history requests per session, not per connection: one pacer for them all.
        self.pacer = HistoryPacer()
        self._bars = self._new_bars(REALTIME_BAR_SECONDS)
        self._refreshes: set[asyncio.Task[None]] = set()
        self._link_down = False  # TWS lost IB's servers (1100) until 1101 / 1102
        self._farm_broken_at: float | None = None  # monotonic time of a 2103 not yet OK
        self._competing_told = False  # a competing session (10197) was told, not its end

    # ---- public --------------------------------------------------------------------------

    async def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        if bar_seconds not in (5, 60):
            raise FeedError(f"IB bars must be 5 or 60 seconds long, not {bar_seconds}.")
        self._closed = asyncio.Event()
        self._inbox = asyncio.Queue()
        self._bars = self._new_bars(bar_seconds)
        self._symbols = {}
        refused: list[StatusEvent] = []
        for raw in symbols:
            try:
                instrument = parse_item(raw)
            except ItemError as err:
                refused.append(StatusEvent("notice", f"{err} The other symbols continue.",
                                           symbol=str(raw), permanent=True))  # fmt: skip
                continue
            if instrument.text not in self._symbols:
                self._symbols[instrument.text] = SymbolState(instrument.text, instrument)
        for notice in refused:
            yield notice
        if not self._symbols:
            yield StatusEvent("error", NOTHING_LEFT, permanent=True)
            raise FeedError(NOTHING_LEFT, permanent=True)
        try:
            async for event in self._run(warmup_bars):
                yield event
        finally:
            for task in self._refreshes:
                task.cancel()
            self._disconnect()

    async def close(self) -> None:
        self._closed.set()
        self._disconnect()
        self._inbox.put_nowait(Closed())

    # ---- connection and IB's callbacks ---------------------------------------------------

    def _new_bars(self, bar_seconds: int) -> IBBars:
        return IBBars(
            self.connection,
            self._inbox,
            bar_seconds=bar_seconds,
            use_rth=self.use_rth,
            clock=self.clock,
            pacer=self.pacer,
        )

    def _disconnect(self) -> None:
        """Cancel the subscriptions and drop the connection."""
        for state in self._symbols.values():
            self._bars.unsubscribe(state)
        self.connection.disconnect()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless closed first; True if the feed was closed."""
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self._closed.is_set()

    def _on_error(self, req_id: int, code: int, message: str, symbol: str | None) -> None:
        """IB's error callback (current connection only): connection and realtime errors go
        to the inbox, those of history and contract lookups to the bars."""
        if code in FARM_OK_CODES:
            return
        if req_id == -1 or self._realtime_state(req_id) is not None:
            self._inbox.put_nowait(ErrorArrived(self.connection.generation, req_id, code, message))
        elif symbol:
            self._bars.note_request_error(symbol.upper(), code, message)

    def _on_disconnected(self) -> None:
        self._inbox.put_nowait(Disconnected(self.connection.generation))

    def _realtime_state(self, req_id: int) -> SymbolState | None:
        """The symbol whose realtime subscription on this connection is ``req_id``."""
        for state in self._symbols.values():
            if state.realtime is not None and state.realtime.req_id == req_id:
                return state
        return None

    # ---- connection loop -----------------------------------------------------------------

    async def _run(self, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        where = f"{self.host}:{self.port}"
        ever_connected = False
        backoff = 0.5
        id_in_use = 0
        announce = True
        self.connection.client_id = self.client_id
        while not self._closed.is_set():
            state = "reconnecting" if ever_connected else "connecting"
            if announce:
                yield StatusEvent(state, f"Connecting to TWS / IB Gateway at {where}…")
                announce = False
            try:
                await self.connection.connect(self._closed)
            except ConnectFailure as failure:
                if self._closed.is_set():
                    return
                delay = min(backoff, REFUSED_RETRY) if failure.refused else backoff
                if failure.code == 326:
                    taken = self.connection.client_id
                    if self.next_client_id and taken < self.client_id + NEXT_CLIENT_IDS:
                        # The user allowed it: another program has the id, take the next.
                        self.connection.client_id = taken + 1
                        yield StatusEvent(
                            state,
                            f"Client id {taken} is in use by another program; trying client "
                            f"id {taken + 1} (Settings allow the next free id).",
                        )
                        continue
                    if ever_connected:
                        # Another program took it while we were away: wait for it to leave.
                        yield StatusEvent(state, client_id_taken_message(taken, next_allowed=False))
                        if await self._sleep(max(backoff, 2.0)):
                            return
                        backoff = min(backoff * 2, self.max_backoff)
                        continue
                    id_in_use += 1
                    # Our own previous session may still hold the id for a moment.
                    if id_in_use >= 3:
                        yield StatusEvent("error", failure.message, permanent=True)
                        raise FeedError(failure.message, code=326, permanent=True) from None
                restart = (
                    restart_sentence(self.restart_time, self.restart_zone, self.clock())
                    if ever_connected
                    else None
                )
                if restart is not None:
                    yield StatusEvent(state, restart)
                else:
                    # A refused connection costs nothing: keep polling so bars flow again
                    # within a few seconds of TWS coming back, however long it was away.
                    yield StatusEvent(
                        state, f"{failure.message} Retrying in {format_seconds(delay)}."
                    )
                if await self._sleep(delay):
                    return
                backoff = min(backoff * 2, self.max_backoff)
                continue
            id_in_use = 0
            backoff = 0.5
            reconnected = ever_connected
            ever_connected = True
            try:
                async for event in self._session(warmup_bars, reconnected=reconnected):
                    yield event
            except ConnectionError as exc:
                logger.info("IB connection lost: %s", exc)
            if self._closed.is_set():
                return
            if not any(not s.dropped for s in self._symbols.values()):
                return
            self._disconnect()
            self._link_down = False
            self._farm_broken_at = None
            restart = restart_sentence(self.restart_time, self.restart_zone, self.clock())
            for event in self._streams_all("stale", restart or "Reconnecting to TWS / IB Gateway."):
                yield event
            yield StatusEvent(
                "reconnecting",
                restart or f"Lost the connection to TWS / IB Gateway at {where}; reconnecting.",
            )
            if await self._sleep(backoff):
                return

    # ---- one connected session -----------------------------------------------------------

    async def _session(
        self, warmup_bars: int, *, reconnected: bool = False
    ) -> AsyncIterator[FeedEvent]:
        event: FeedEvent
        client = self.connection.client
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
        for state in live:
            if state.hours is None:
                await self._build_hours(state, datetime.fromtimestamp(self.clock(), UTC))
        cold = [s for s in live if not s.warmed]
        if cold:
            names = ", ".join(s.symbol for s in cold)
            yield StatusEvent("warming_up", f"Loading history for {names}…")
        for state in live:
            self._bars.subscribe(state)
        before = self._backfilled()
        for state in live:
            if state.warmed:
                async for event in self._bars.backfill(state):
                    yield event
        backfilled = self._backfilled() - before
        async for event in self._warm_up_all(cold, warmup_bars):
            yield event
        if client is not self.connection.client:
            raise ConnectionError("connection lost during warm-up")
        now = time.monotonic()
        for state in live:
            # A long warm-up is no silence: the bars that came meanwhile wait in the inbox,
            # the watchdog must not renew subscriptions (or close minutes) before they're in.
            state.last_arrival = max(state.last_arrival, now)
            state.flow_from = now
        names = ", ".join(s.symbol for s in live if not s.dropped)
        size = "5-second" if self._bars.bar_seconds == 5 else "1-minute"
        client_id = self.connection.client_id
        as_id = f" as client id {client_id}" if client_id != self.client_id else ""
        again = ""
        if reconnected:
            again = f"Reconnected; data resubscribed, {bars_text(backfilled)} backfilled. "
        yield StatusEvent(
            "running",
            f"{again}Receiving {size} bars for {names} from TWS at {self.host}:{self.port}{as_id}.",
        )
        for state in live:
            # After "running", so the sentence isn't replaced at once by the next status.
            if state.warmup_notice is not None:
                yield state.warmup_notice
                state.warmup_notice = None
        last_tick = 0.0
        first_check = True
        while not self._closed.is_set():
            item: InboxItem | None = None  # None: a second without news, time for the checks
            with contextlib.suppress(TimeoutError):
                item = await asyncio.wait_for(self._inbox.get(), 1.0)
            generation = self.connection.generation
            if isinstance(item, Closed):
                return
            if isinstance(item, Disconnected):
                if item.generation == generation:
                    raise ConnectionError("disconnected")
                continue
            if isinstance(item, BarArrived):
                if item.generation != generation:
                    continue
                state = self._symbols[item.symbol]
                if state.dropped:
                    continue
                async for event in self._take_live(state, item.bar):
                    yield event
            elif isinstance(item, BadBar):
                if item.generation == generation:
                    logger.warning("%s: skipped a realtime bar: %s", item.symbol, item.problem)
                    yield StatusEvent(
                        "notice", f"{item.symbol}: skipped a bar from TWS: {item.problem}.",
                        symbol=item.symbol,
                    )  # fmt: skip
            elif isinstance(item, ErrorArrived):
                if item.generation != generation:
                    continue
                async for event in self._handle_error(item.req_id, item.code, item.message):
                    yield event
                if not any(not s.dropped for s in self._symbols.values()):
                    yield StatusEvent("error", NOTHING_LEFT, permanent=True)
                    raise FeedError(NOTHING_LEFT, permanent=True)
            now = time.monotonic()
            if now - last_tick >= 1.0:
                last_tick = now
                at = datetime.fromtimestamp(self.clock(), UTC)
                for event in self._check_markets(at, now, first=first_check):
                    yield event
                first_check = False
                for event in self._watchdog(now):
                    yield event
                for event in self._check_streams(now):
                    yield event
                for state in self._symbols.values():
                    # The ignored bars not told yet (at most one notice every few seconds).
                    if (notice := ignored_notice(state, now)) is not None:
                        yield notice

    async def _warm_up_all(
        self, cold: list[SymbolState], warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        """The warm-ups of ``cold`` side by side (IB serves several history requests at
        once; the pacer keeps them all within IB's rules). Each symbol's events keep their
        order."""
        queue: asyncio.Queue[FeedEvent | Exception | None] = asyncio.Queue()
        # Less when an earlier connection's warm-up spent some in the last ten minutes.
        budget = warmup_budget(len(cold), used=self.pacer.recent())

        async def warm(state: SymbolState) -> None:
            try:
                warming = self._bars.warm_up(state, warmup_bars, budget=budget, symbols=len(cold))
                async for event in warming:
                    queue.put_nowait(event)
            except Exception as exc:  # the session raises it
                queue.put_nowait(exc)
            else:
                queue.put_nowait(None)

        tasks = [asyncio.ensure_future(warm(state)) for state in cold]
        try:
            running = len(tasks)
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield item
        finally:
            for task in tasks:
                task.cancel()

    async def _qualify(self, states: list[SymbolState]) -> list[FeedEvent]:
        """Look each item up and pick its contract (a future's front month); an item IB
        doesn't know, or finds several contracts for, is dropped with a sentence."""
        events: list[FeedEvent] = []
        client = self.connection.client
        for state in states:
            if client is None:
                raise ConnectionError("connection lost while looking up contracts")
            instrument = state.instrument
            assert instrument is not None
            self._bars.pop_request_error(state.symbol)
            try:
                matches = await asyncio.wait_for(client.find_contracts(instrument), 15)
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
            if client is not self.connection.client:
                raise ConnectionError("connection lost while looking up contracts")
            error = self._bars.pop_request_error(state.symbol)
            if matches:
                try:
                    state.contract = choose_contract(
                        instrument,
                        matches,
                        now_utc=datetime.fromtimestamp(self.clock(), UTC),
                        roll_days=self.roll_days,
                    )
                except ContractChoiceError as err:
                    message, permanent = str(err), True
                else:
                    events.append(InstrumentEvent(state.symbol, state.contract.info))
                    continue
            else:
                code, text = error or (200, "")
                if code == 200:
                    message, permanent = unknown_sentence(instrument), True
                else:
                    sentence, permanent = describe_ib_error(code, text)
                    message = f"{state.symbol}: {sentence}"
            if permanent:
                state.dropped = True
                state.refused_reason = message
                message += " The other symbols continue."
            events.append(StatusEvent("notice", message, symbol=state.symbol, permanent=permanent))
        return events

    # ---- market hours --------------------------------------------------------------------

    async def _build_hours(self, state: SymbolState, now_utc: datetime) -> None:
        """``state``'s hours from its contract details (IB's ``tradingHours``,
        ``liquidHours``, ``timeZoneId``), or from the exchange calendar where IB's strings
        are empty or unreadable; kept for the exchange's day."""
        contract, instrument = state.contract, state.instrument
        if contract is None or instrument is None:
            return
        venue = venue_name(instrument)
        hours: TradingHours | None = None
        if contract.trading_hours.strip():
            try:
                hours = TradingHours.from_ib(
                    contract.trading_hours,
                    contract.liquid_hours,
                    contract.time_zone_id,
                    venue=venue,
                )
            except ValueError as err:
                logger.warning("%s: IB's trading hours unreadable (%s)", state.symbol, err)
        if hours is None:
            # The exchange calendar imports pandas (~0.5 s) once: off the event loop.
            hours = await asyncio.to_thread(fallback_hours, instrument)
        state.hours = hours
        state.hours_key = (contract.con_id, exchange_date(contract, now_utc).isoformat())

    def _check_markets(self, at: datetime, now: float, *, first: bool) -> list[FeedEvent]:
        """Each item's market, per its own hours: a MarketEvent when it changed, and one
        notice naming the items that changed (at the start: those that are closed)."""
        events: list[FeedEvent] = []
        said: list[str] = []
        for state in self._symbols.values():
            if state.dropped or state.contract is None or state.hours is None:
                continue
            self._renew_hours(state, at)
            if state.roll_notice:
                events.append(StatusEvent("notice", state.roll_notice, symbol=state.symbol))
                state.roll_notice = ""
            hours: TradingHours = state.hours
            market = (hours.is_open(at, rth=self.use_rth), hours.line(at, rth=self.use_rth))
            if market == state.market:
                continue
            changed_open = state.market is None or state.market[0] != market[0]
            state.market = market
            events.append(MarketEvent(state.symbol, market[0], market[1]))
            if changed_open:
                # A market opening (or closing) is no silence: the watchdog starts over.
                state.last_arrival = state.flow_from = now
                if not (first and market[0]):
                    said.append(f"{state.symbol} — {market[1]}")
        if said:
            closed = any(" — closed" in line for line in said)
            tail = " (IB sends no realtime bars while a market is closed)" if closed else ""
            events.append(StatusEvent("notice", "; ".join(said) + tail + "."))
        return events

    def _renew_hours(self, state: SymbolState, at: datetime) -> None:
        """On a new exchange day, ask IB for the contract's details again (its schedule
        covers about a week) and rebuild the hours; meanwhile the old ones serve."""
        contract = state.contract
        if contract is None or state.refreshing:
            return
        if state.hours_key == (contract.con_id, exchange_date(contract, at).isoformat()):
            return
        state.refreshing = True
        task = asyncio.ensure_future(self._refresh_details(state, at))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh_details(self, state: SymbolState, at: datetime) -> None:
        try:
            client, contract, instrument = self.connection.client, state.contract, state.instrument
            fresh: IBContract | None = None
            if client is not None and contract is not None and instrument is not None:
                found: list[IBContract] = []
                with contextlib.suppress(Exception):
                    found = await asyncio.wait_for(client.find_contracts(instrument), 15)
                    fresh = next((c for c in found if c.con_id == contract.con_id), None)
                self._bars.pop_request_error(state.symbol)
                self._note_roll(state, contract, found, at)
            if fresh is not None and state.contract is contract:
                state.contract = fresh
            await self._build_hours(state, at)
        finally:
            state.refreshing = False

    def _note_roll(
        self, state: SymbolState, contract: IBContract, months: list[IBContract], at: datetime
    ) -> None:
        """A streamed future entering the roll window: say once that the front month is now
        another (a run keeps its contract: the months' prices differ, the indicators would
        mix them); the next start streams it."""
        if contract.sec_type != "FUT" or not months:
            return
        front = front_month(months, at, self.roll_days)
        if front is None or front.con_id == contract.con_id or state.roll_to == front.con_id:
            return
        state.roll_to = front.con_id
        state.roll_notice = (
            f"{state.symbol}: {contract.local_symbol} expires within the {self.roll_days}-day "
            f"roll window; the front month is now {front.local_symbol}. This run keeps "
            f"streaming {contract.local_symbol}: stop and start the engine to switch."
        )

    async def _handle_error(self, req_id: int, code: int, message: str) -> AsyncIterator[FeedEvent]:
        if req_id == -1:
            async for event in self._handle_connection_notice(code, message):
                yield event
            return
        refused = self._realtime_state(req_id)
        if refused is None:
            return
        symbol = refused.symbol
        sentence, permanent = describe_ib_error(code, message)
        if code == TRADE_BUST:
            # IB deactivated the subscription: a new one at once (the gap fills from history
            # with its first bar), and a short staleness window in case it stays silent.
            self._bars.subscribe(refused)
            refused.recheck_until = time.monotonic() + RECHECK_WINDOW
            yield StatusEvent("notice", f"{symbol}: {sentence}", symbol=symbol)
            return
        if code == COMPETING_SESSION:
            # It concerns the whole IB login: one sentence for every item it silences.
            refused.competing = True
            if not self._competing_told:
                self._competing_told = True
                yield StatusEvent("notice", sentence)
            return
        if code not in REALTIME_SYMBOL_CODES and not permanent:
            logger.info("IB error %s for %s: %s", code, symbol, message)
            return
        if permanent:
            refused.dropped = True
            refused.refused_reason = sentence
            self._bars.unsubscribe(refused)
            sentence += " The other symbols continue."
        if code in refused.notices and not permanent:
            return
        refused.notices.add(code)
        yield StatusEvent("notice", f"{symbol}: {sentence}", symbol=symbol, permanent=permanent)

    async def _handle_connection_notice(self, code: int, message: str) -> AsyncIterator[FeedEvent]:
        """IB's errors and notices about the connection (request id -1)."""
        if code == 326:
            return
        sentence, _ = describe_ib_error(code, message)
        live = [s for s in self._symbols.values() if not s.dropped]
        if code == 1100:
            # TWS lost IB's servers: bars pause. Renewing subscriptions now would be a storm
            # of requests for nothing; wait for 1101 / 1102.
            self._link_down = True
            yield StatusEvent("reconnecting", sentence)
        elif code in (1101, 1102):
            self._link_down = False
            if code == 1101:  # data lost: the old subscriptions stay silent forever
                for state in live:
                    self._bars.subscribe(state)
            before = self._backfilled()
            for state in live:
                async for event in self._bars.backfill(state):
                    yield event
            filled = bars_text(self._backfilled() - before)
            now = time.monotonic()
            for state in live:
                state.last_arrival = max(state.last_arrival, now)  # the watchdog starts over
                state.flow_from = now
            if code == 1101:
                yield StatusEvent(
                    "running",
                    "TWS / IB Gateway is connected to IB's servers again (market data was "
                    f"lost): data resubscribed, {filled} backfilled.",
                )
            else:
                yield StatusEvent(
                    "running",
                    "TWS / IB Gateway is connected to IB's servers again (market data was "
                    f"kept): {filled} backfilled.",
                )
        elif code == 1300:
            yield StatusEvent("notice", sentence)
            raise ConnectionError("TWS socket port reset")
        elif code == 2103:
            if self._farm_broken_at is None:
                self._farm_broken_at = time.monotonic()
            yield StatusEvent("notice", sentence)
        elif code == MARKET_FARM_OK:
            async for event in self._farm_ok(live):
                yield event
        elif code == COMPETING_SESSION:
            for state in live:
                state.competing = True
            if not self._competing_told:
                self._competing_told = True
                yield StatusEvent("notice", sentence)
        elif code >= 2100 and code not in (2105, 2157):
            logger.info("IB notice %s: %s", code, message)
        else:
            yield StatusEvent("notice", sentence)

    async def _farm_ok(self, live: list[SymbolState]) -> AsyncIterator[FeedEvent]:
        """The market-data farm is back after a 2103: a subscription that got nothing since
        may be dead without a word (IB does that): renew it now, and watch the others
        closely for a while."""
        broken_at, self._farm_broken_at = self._farm_broken_at, None
        if broken_at is None:
            return
        now = time.monotonic()
        renewed = []
        for state in live:
            state.recheck_until = now + RECHECK_WINDOW
            if state.realtime is not None and state.last_bar_mono < broken_at:
                self._bars.subscribe(state)
                renewed.append(state.symbol)
        said = f"; renewed the subscription of {', '.join(renewed)}" if renewed else ""
        yield StatusEvent("notice", f"IB's market data farm connection is OK again{said}.")

    # ---- bars in -------------------------------------------------------------------------

    async def _take_live(self, state: SymbolState, bar: Bar) -> AsyncIterator[FeedEvent]:
        """One realtime bar: ignored (and counted) when it can't be right; after a gap,
        the missing bars from history first; then the bar."""
        now = time.monotonic()
        state.last_arrival = now
        state.stale_notified = False
        why = ignore_reason(state, bar, self.clock())
        if why is not None:
            state.ignored[why] += 1
            logger.info("%s: ignored a realtime bar at %s (%s)", state.symbol, bar.time, why)
            if (notice := ignored_notice(state, now)) is not None:
                yield notice
            return
        state.last_bar_mono = now
        state.last_bar_clock = self.clock()
        state.renewals = 0
        if state.competing:
            state.competing = False
            if self._competing_told:  # the first item back says it for all
                self._competing_told = False
                yield StatusEvent("notice", "Bars from IB again: the competing live session ended.")
        if state.last_5s is not None and bar.time > state.last_5s + REALTIME_BAR_SECONDS:
            # Bars are missing (a silent stretch, a renewed subscription): fill them first.
            before = state.backfilled
            async for event in self._bars.backfill(state, before=bar.time):
                yield event
            if (filled := state.backfilled - before) > 0:
                yield StatusEvent(
                    "notice",
                    f"{state.symbol}: {bars_text(filled)} missing from the realtime stream "
                    "filled from IB's history.",
                    symbol=state.symbol,
                )
        for out in self._bars.take(state, bar):
            yield BarEvent(out)

    def _backfilled(self) -> int:
        return sum(state.backfilled for state in self._symbols.values())

    # ---- streams -------------------------------------------------------------------------

    def _check_streams(self, now: float) -> list[FeedEvent]:
        events: list[FeedEvent] = []
        for state in self._symbols.values():
            stream = stream_of(state, now, link_down=self._link_down, stale_after=self.stale_after)
            if stream is None or stream == state.stream:
                continue
            state.stream = stream
            since = self.clock()
            if stream[0] == "stale" and state.last_bar_clock is not None:
                since = state.last_bar_clock
            events.append(StreamEvent(state.symbol, stream[0], stream[1], since))
        return events

    def _streams_all(self, stream: str, reason: str) -> list[FeedEvent]:
        """Every item not dropped is now ``stream`` (the connection was lost)."""
        events: list[FeedEvent] = []
        for state in self._symbols.values():
            if state.dropped or state.stream == (stream, reason):
                continue
            state.stream = (stream, reason)
            since = state.last_bar_clock if state.last_bar_clock is not None else self.clock()
            events.append(StreamEvent(state.symbol, stream, reason, since))
        return events

    def _watchdog(self, now: float) -> list[FeedEvent]:
        """Close the minutes of silent items; renew the subscription of an item silent for
        ``stale_after`` seconds while its own market is open and TWS has IB's servers (less
        just after a farm blip or a trade bust; backing off while it stays silent; rarely
        during a competing session)."""
        events: list[FeedEvent] = []
        for state in self._symbols.values():
            if state.dropped or state.realtime is None:
                continue
            silent = now - state.last_arrival
            if silent > MINUTE_FLUSH_AFTER:
                events.extend(BarEvent(minute) for minute in self._bars.flush(state))
            market_open = state.market is not None and state.market[0]
            if not market_open or self._link_down or self._farm_broken_at is not None:
                continue  # nothing to renew: IB says it sends nothing now
            window = self.stale_after
            if now < state.recheck_until:
                window = min(window, RECHECK_AFTER)
            if state.competing:
                window = max(window, COMPETING_RETRY)
            window *= 2 ** min(state.renewals, 3)
            if silent > window:
                logger.info("%s silent for %.0f s; resubscribing", state.symbol, silent)
                if not state.stale_notified and not state.competing:
                    events.append(
                        StatusEvent(
                            "notice",
                            f"{state.symbol}: no bars from IB for {silent:.0f} s while its "
                            "market is open; renewing the subscription (the missed bars "
                            "come from history).",
                            symbol=state.symbol,
                        )
                    )
                    state.stale_notified = True
                state.renewals += 1
                self._bars.subscribe(state)
        return events
