"""The IB feed: TWS / IB Gateway realtime bars through ib_async (ib_insync as fallback).

This is the only module of the project that imports the IB client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

try:
    import ib_async as ibapi
except ImportError:  # pragma: no cover - exercised in the ib_insync virtualenv
    import ib_insync as ibapi  # type: ignore[no-redef]

from engine import markethours
from engine.core.bars import Bar, MinuteAggregator
from engine.feeds.base import BarEvent, Feed, FeedError, FeedEvent, StatusEvent

logger = logging.getLogger(__name__)

REALTIME_BAR_SECONDS = 5
# IB serves at most 3600 S of 5-second history per request.
MAX_5S_HISTORY = 3600
MAX_1M_HISTORY = 86400
TWS_API_HELP = "Configure → API → Settings"
NOTHING_LEFT = (
    "None of the watchlist symbols can be streamed from IB; see the messages above for each."
)
# Retry interval cap while the TWS port refuses connections (TWS not running yet).
REFUSED_RETRY = 2.0
# How long a minute may stay open with no new 5 s bar before it is closed anyway.
MINUTE_FLUSH_AFTER = 10.0

# code -> (message, permanent). ``{msg}`` is IB's own text.
IB_ERROR_MESSAGES: dict[int, tuple[str, bool]] = {
    100: ("IB says the API sent too many messages per second; slowing down.", False),
    101: (
        "IB refused more market data: your account's market-data line limit is reached. "
        "Close other subscriptions or watch fewer symbols.",
        True,
    ),
    162: ("IB's historical data service refused the request: {msg}", False),
    200: (
        "IB doesn't know this symbol as a stock on SMART in USD. Check the ticker "
        "(for example BRK B, not BRK.B).",
        True,
    ),
    321: ("IB rejected a request as invalid: {msg}", True),
    322: ("IB could not process a request: {msg}", False),
    326: (
        "The client id is already in use by another API connection to TWS / IB Gateway. "
        "Choose a different client id in Settings, or close the other program.",
        True,
    ),
    354: (
        "No market data subscription for this symbol in your IB account (IB error 354). "
        "Subscribe to the exchange's data in Client Portal → Settings → Market Data "
        "Subscriptions, or remove the symbol.",
        True,
    ),
    420: (
        "IB refused realtime bars: your account has no market data permission for this "
        "symbol's exchange (IB error 420). Add the subscription in Client Portal or remove "
        "the symbol.",
        True,
    ),
    502: (
        "TWS / IB Gateway refused the API connection. Enable 'ActiveX and Socket Clients' "
        f"in {TWS_API_HELP} and check the port.",
        False,
    ),
    504: ("Not connected to TWS / IB Gateway.", False),
    1100: (
        "TWS / IB Gateway lost its connection to IB's servers; waiting for it to come back.",
        False,
    ),
    1101: (
        "TWS / IB Gateway reconnected to IB's servers but market data was lost; resubscribing.",
        False,
    ),
    1102: ("TWS / IB Gateway reconnected to IB's servers; market data was kept.", False),
    1300: ("TWS / IB Gateway changed its API port; reconnecting.", False),
    2103: ("IB market data farm connection is broken; bars may pause: {msg}", False),
    2105: ("IB historical data farm connection is broken: {msg}", False),
    2157: ("IB security definition farm connection is broken: {msg}", False),
    10089: (
        "This symbol's market data needs an additional API subscription in your IB "
        "account (IB error 10089). Add it in Client Portal or remove the symbol.",
        True,
    ),
    10167: ("IB sends delayed data only for this symbol: {msg}", True),
    10197: (
        "IB sends no market data during a competing live session: the same IB user is "
        "logged in elsewhere (another TWS, IBKR Mobile or Client Portal) and owns the "
        "market data. Log out there; bars resume automatically.",
        False,
    ),
}
_PERMISSION_CODES = frozenset({101, 354, 420, 10089, 10167})
_REALTIME_SYMBOL_CODES = _PERMISSION_CODES | {162, 200, 321, 322, 10197}
_FARM_OK_CODES = frozenset({2104, 2106, 2107, 2108, 2119, 2158})


def describe_ib_error(code: int, msg: str) -> tuple[str, bool]:
    """IB error ``code`` with IB's text ``msg`` → (a sentence for the user, permanent)."""
    text = (msg or "").strip()
    lower = text.lower()
    if "pacing violation" in lower:
        return (
            "IB pacing violation: too many historical data requests in a short time. "
            "Waiting before asking again.",
            False,
        )
    if code == 162:
        if "permission" in lower:
            return (
                "No historical data permission for this symbol in your IB account "
                f"(IB error 162: {text}).",
                True,
            )
        if "no data" in lower:
            return ("IB has no historical bars for this period.", False)
        if "competing live session" in lower:
            return describe_ib_error(10197, text)
    if code == 420 and "permission" not in lower and text:
        return (f"IB refused realtime bars (IB error 420): {text}", False)
    template, permanent = IB_ERROR_MESSAGES.get(code, ("IB error {code}: {msg}", False))
    return template.format(code=code, msg=text), permanent


def unreachable_message(host: str, port: int) -> str:
    return (
        f"Can't reach TWS / IB Gateway at {host}:{port} — is it running with the API "
        f"enabled ({TWS_API_HELP})?"
    )


def _client_id_message(client_id: int) -> str:
    return (
        f"Client id {client_id} is already in use by another API connection to TWS / IB "
        f"Gateway. Choose another client id in Settings (for example {client_id + 1}) or "
        "close the other program."
    )


class _ConnectFailure(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: int | None = None,
        refused: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.refused = refused


@dataclass
class _Symbol:
    symbol: str
    contract: Any = None
    realtime: Any = None  # the library's RealTimeBarList of the current connection
    last_5s: int | None = None  # start of the last 5-second bar taken in
    last_yielded: int | None = None  # start of the last bar yielded, in run bar size
    last_arrival: float = 0.0  # monotonic time of the last realtime bar
    first_live: int | None = None  # start of the first bar of the current subscription
    warmed: bool = False
    dropped: bool = False
    stale_notified: bool = False
    notices: set[int] = field(default_factory=set)


class IBFeed(Feed):
    """Closed bars from TWS / IB Gateway: history warm-up, then 5-second realtime bars
    (aggregated to 1 minute locally when asked), with reconnect, backfill and a per-symbol
    staleness watchdog during NYSE hours."""

    name: ClassVar[str] = "ib"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 17,
        exchange: str = "SMART",
        currency: str = "USD",
        use_rth: bool = False,
        connect_timeout: float = 10,
        max_backoff: float = 10.0,
        stale_after: float = 15.0,
        clock: Callable[[], float] = time.time,
    ):
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.exchange = exchange
        self.currency = currency
        self.use_rth = use_rth
        self.connect_timeout = connect_timeout
        self.max_backoff = min(max(max_backoff, 0.1), 10.0)
        self.stale_after = stale_after
        self.clock = clock
        self._ib: Any = None
        self._generation = 0
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._symbols: dict[str, _Symbol] = {}
        self._realtime_req: dict[int, str] = {}  # reqId -> symbol, current connection
        self._request_errors: dict[str, tuple[int, str]] = {}  # symbol -> last error
        self._aggregator: MinuteAggregator | None = None
        self._bar_seconds = REALTIME_BAR_SECONDS
        self._calendar_ready: asyncio.Future[Any] | None = None

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
                self._symbols[sym] = _Symbol(sym)
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
            except _ConnectFailure as failure:
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
                yield StatusEvent(state, f"{failure.message} Retrying in {_seconds(delay)}.")
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

    async def _connect(self) -> None:
        """Connect read-only; raises :class:`_ConnectFailure` with a readable message."""
        self._generation += 1
        generation = self._generation
        ib = ibapi.IB()
        loop = asyncio.get_running_loop()
        refused: asyncio.Future[_ConnectFailure] = loop.create_future()

        def on_error(req_id: int, code: int, message: str, contract: Any = None) -> None:
            if generation != self._generation:
                return
            if code == 326 and not refused.done():
                refused.set_result(
                    _ConnectFailure(_client_id_message(self.client_id), permanent=True, code=326)
                )
            self._on_error(req_id, code, message, contract)

        def on_api_error(message: str) -> None:
            # The peer closing the socket during the handshake: fail now, not at timeout.
            if not refused.done() and "Peer closed" in str(message):
                refused.set_result(
                    _ConnectFailure(
                        f"TWS / IB Gateway at {self.host}:{self.port} closed the API "
                        f"connection (client id {self.client_id} in use, or this host not "
                        f"in Trusted IPs in {TWS_API_HELP})."
                    )
                )

        def on_disconnected() -> None:
            if generation == self._generation:
                self._queue.put_nowait(("disconnected", generation))

        ib.errorEvent += on_error
        ib.client.apiError += on_api_error
        kwargs: dict[str, Any] = {"readonly": True, "timeout": self.connect_timeout}
        if hasattr(ibapi, "StartupFetchNONE"):
            kwargs["fetchFields"] = ibapi.StartupFetchNONE
        self._ib = ib
        connecting = asyncio.ensure_future(
            ib.connectAsync(self.host, self.port, clientId=self.client_id, **kwargs)
        )
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait(
                {connecting, refused, closing}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closing.cancel()
        if connecting in done and connecting.exception() is None:
            ib.disconnectedEvent += on_disconnected
            self._realtime_req = {}
            logger.info(
                "connected to %s:%s, server version %s",
                self.host,
                self.port,
                ib.client.serverVersion(),
            )
            return
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        self._shutdown_connection()
        if refused.done():
            raise refused.result()
        if self._closed.is_set():
            raise _ConnectFailure("Closed.")
        exc = connecting.exception()
        if isinstance(exc, TimeoutError):
            raise _ConnectFailure(
                f"TWS / IB Gateway at {self.host}:{self.port} did not complete the API "
                f"handshake within {_seconds(self.connect_timeout)} (is a login or "
                "'accept incoming connection' dialog open?)."
            )
        if isinstance(exc, OSError):
            raise _ConnectFailure(
                unreachable_message(self.host, self.port),
                refused=isinstance(exc, ConnectionRefusedError),
            )
        raise _ConnectFailure(f"Connecting to TWS / IB Gateway failed: {exc}")

    def _shutdown_connection(self) -> None:
        ib, self._ib = self._ib, None
        self._generation += 1  # ignore late events of the old connection
        if ib is None:
            return
        for state in self._symbols.values():
            bars, state.realtime = state.realtime, None
            if bars is not None and ib.isConnected():
                with contextlib.suppress(Exception):
                    ib.cancelRealTimeBars(bars)
        self._realtime_req = {}
        with contextlib.suppress(Exception):
            ib.disconnect()
        with contextlib.suppress(Exception):
            ib.client.disconnect()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless closed first; True if the feed was closed."""
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)
        return self._closed.is_set()

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

    async def _qualify(self, states: list[_Symbol]) -> list[StatusEvent]:
        events: list[StatusEvent] = []
        ib = self._ib
        for state in states:
            self._request_errors.pop(state.symbol, None)
            stock = ibapi.Stock(state.symbol, self.exchange, self.currency)
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

    def _subscribe(self, state: _Symbol) -> None:
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
            bar = Bar(
                symbol,
                int(rt.time.timestamp()),
                REALTIME_BAR_SECONDS,
                float(rt.open_),
                float(rt.high),
                float(rt.low),
                float(rt.close),
                float(rt.volume),
            )
            if state.first_live is None:
                state.first_live = bar.time
            self._queue.put_nowait(("bar", generation, symbol, bar))

        bars.updateEvent += on_update

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code in _FARM_OK_CODES:
            return
        if req_id in self._realtime_req or req_id == -1:
            self._queue.put_nowait(("error", self._generation, req_id, code, message))
        elif contract is not None and getattr(contract, "symbol", None):
            self._request_errors[contract.symbol.upper()] = (code, message)

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
        if code not in _REALTIME_SYMBOL_CODES and not permanent:
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

    # ---- bars --------------------------------------------------------------------------

    def _take(self, state: _Symbol, bar: Bar) -> list[Bar]:
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
        self, state: _Symbol, duration: int, bar_size: str
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
        now = self.clock()
        bars = []
        for row in rows or []:
            start = _epoch(row.date)
            if start + seconds > now:
                continue  # still forming
            bars.append(
                Bar(state.symbol, start, seconds, float(row.open), float(row.high),
                    float(row.low), float(row.close), float(row.volume))
            )  # fmt: skip
        return bars, error

    async def _warm_up(self, state: _Symbol, warmup_bars: int) -> AsyncIterator[FeedEvent]:
        if warmup_bars <= 0:
            state.warmed = True
        else:
            seconds = self._bar_seconds
            bar_size = "5 secs" if seconds == 5 else "1 min"
            cap = MAX_5S_HISTORY if seconds == 5 else MAX_1M_HISTORY
            first = min(cap, warmup_bars * seconds * 2 + 60)
            bars, error = await self._history(state, first, bar_size)
            if len(bars) < warmup_bars and first < cap and not _is_hard(error):
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

    async def _backfill(self, state: _Symbol) -> AsyncIterator[FeedEvent]:
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


def _is_hard(error: tuple[int, str] | None) -> bool:
    return error is not None and describe_ib_error(*error)[1]


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    # A date (daily bars) never reaches here with formatDate=2 intraday bars.
    raise ValueError(f"unexpected IB bar time {value!r}")


def _seconds(value: float) -> str:
    return f"{value:g} s"


async def test_connection(
    host: str,
    port: int,
    client_id: int,
    timeout: float = 5,  # noqa: ASYNC109
) -> tuple[bool, str]:
    """Connect read-only, read the server version and accounts, disconnect; returns
    (ok, a sentence for the Settings page)."""
    feed = IBFeed(host=host, port=port, client_id=client_id, connect_timeout=timeout)
    try:
        await asyncio.wait_for(feed._connect(), timeout + 1)
    except _ConnectFailure as failure:
        return False, failure.message
    except TimeoutError:
        feed._shutdown_connection()
        return False, (
            f"TWS / IB Gateway at {host}:{port} did not answer within {_seconds(timeout)}."
        )
    ib = feed._ib
    try:
        version = ib.client.serverVersion()
        accounts = list(ib.managedAccounts())
        when = None
        with contextlib.suppress(Exception):
            when = await asyncio.wait_for(ib.reqCurrentTimeAsync(), timeout)
    finally:
        feed._shutdown_connection()
    kind = ""
    if accounts:
        paper = all(a.startswith("D") for a in accounts)
        kind = " (paper trading)" if paper else " (LIVE trading)"
    clock = f", server time {when:%H:%M:%S} UTC" if when else ""
    return True, (
        f"Connected to TWS / IB Gateway at {host}:{port}: API version {version}, "
        f"account {', '.join(accounts) or 'unknown'}{kind}{clock}."
    )


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
