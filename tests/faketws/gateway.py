"""The scriptable fake TWS / IB Gateway: symbols, errors, pushed bars, restarts, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from tests.faketws.model import (
    PACING_VIOLATION,
    BarTuple,
    HistBar,
    Request,
    Subscription,
    SymbolSpec,
    pacing_violations,
)
from tests.faketws.protocol import Protocol
from tests.faketws.wire import Connection

logger = logging.getLogger(__name__)


class FakeTWS(Protocol):
    """The scriptable gateway. All methods must run on the loop that called :meth:`start`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts: Sequence[str] = ("DU1234567",),
        now: Callable[[], float] = time.time,
        farm_notices: bool = True,
    ):
        self.host = host
        self.port = port
        self.accounts = list(accounts)
        self.now = now
        self.farm_notices = farm_notices
        self.symbols: dict[str, SymbolSpec] = {}
        self.realtime_denied: dict[str, tuple[int, str | None]] = {}
        self.history_denied: dict[str, tuple[int, str | None]] = {}
        self.rejected_client_ids: set[int] = set()
        self.connections: dict[int, Connection] = {}
        self.subscriptions: dict[tuple[int, int], Subscription] = {}
        self.requests: list[Request] = []
        self.subscribe_log: list[Subscription] = []
        self.cancel_log: list[Subscription] = []
        self.history_log: list[dict[str, object]] = []
        self.details_log: list[dict[str, object]] = []  # contract lookups that found some
        self.connect_count = 0
        self.pushed: dict[str, list[HistBar]] = {}
        # Seconds before a history reply is sent (the data is taken when the request arrives).
        self.history_delay = 0.0
        # Answer a history request that breaks IB's pacing rules with IB's error 162.
        self.enforce_pacing = False
        # Faults (see "faults" below). False between connectivity_lost and _restored.
        self.ib_connected = True
        self.broken_farms: set[str] = set()
        # Symbols in a competing live session; None: every symbol; empty with
        # ``competing_on`` False: no session.
        self.competing_on = False
        self.competing: set[str] | None = None
        self.history_refusals: list[tuple[int, str | None]] = []  # for the next requests
        self.client_id_log: list[int] = []  # the client id of every API start, refused too
        self.restarts = 0
        self._restart: asyncio.Task | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conn_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._changed: asyncio.Condition | None = None
        self._next_order_id = 1

    # ---- scripting ----------------------------------------------------------------------

    def add_symbol(
        self,
        symbol: str,
        *,
        con_id: int | None = None,
        history: dict[int, Iterable[BarTuple]] | None = None,
        **details: object,
    ) -> SymbolSpec:
        """Make ``symbol`` known (contract details); ``details`` are :class:`SymbolSpec`
        fields (``primary_exchange``, ``time_zone_id``, ``trading_hours``, ...; for other
        instruments ``sec_type``, ``ib_symbol``, ``exchange``, ``last_trade_date``,
        ``multiplier``, ``min_tick``, ``hours``, ``has_volume``). ``symbol`` is the gateway's
        name for it: ``add_symbol("ESZ6", sec_type="FUT", ib_symbol="ES", exchange="CME",
        last_trade_date="20261218", multiplier="50", min_tick=0.25, hours="cme")``."""
        con_id = con_id or 100000 + len(self.symbols) + 1
        spec = SymbolSpec(symbol=symbol.upper(), con_id=con_id, **details)  # type: ignore[arg-type]
        self.symbols[spec.symbol] = spec
        for seconds, bars in (history or {}).items():
            self.set_history(symbol, int(seconds), bars)
        return spec

    def set_history(self, symbol: str, bar_seconds: int, bars: Iterable[BarTuple]) -> None:
        spec = self.symbols[symbol.upper()]
        spec.history[bar_seconds] = sorted((HistBar.of(b) for b in bars), key=lambda b: b.time)

    def deny_realtime(self, symbol: str, code: int = 354, message: str | None = None) -> None:
        """Answer realtime-bar requests for ``symbol`` with error ``code`` only."""
        self.realtime_denied[symbol.upper()] = (code, message)

    def deny_history(self, symbol: str, code: int = 162, message: str | None = None) -> None:
        """Answer history requests for ``symbol`` with error ``code`` (e.g. 162)."""
        self.history_denied[symbol.upper()] = (code, message)

    def reject_client_id(self, client_id: int) -> None:
        """Refuse ``client_id`` at connect with error 326, as if another app used it."""
        self.rejected_client_ids.add(int(client_id))

    def inject_error(
        self, req_id: int, code: int, message: str | None = None, *, conn_id: int | None = None
    ) -> int:
        """Send an error message to every ready connection (or one); returns how many."""
        sent = 0
        for conn in list(self.connections.values()):
            if conn.ready and (conn_id is None or conn.id == conn_id):
                conn.send_error(req_id, code, message)
                sent += 1
        return sent

    async def push_bar(
        self,
        symbol: str,
        time: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        *,
        wap: float | None = None,
        count: int = 1,
    ) -> int:
        """Deliver one 5-second bar (``time`` = its start, epoch UTC) to every active
        subscription of ``symbol`` and store it as history. Returns the number of
        subscriptions that received it."""
        symbol = symbol.upper()
        values: list[float] = [time, open, high, low, close, volume]
        if wap is not None:
            values += [wap, count]
        bar = HistBar.of(values)
        bar.count = count
        self.pushed.setdefault(symbol, []).append(bar)
        spec = self.symbols.get(symbol)
        if spec is not None:
            history = spec.history.setdefault(5, [])
            history[:] = [b for b in history if b.time != bar.time]
            history.append(bar)
            history.sort(key=lambda b: b.time)
        delivered = 0
        for sub in list(self.subscriptions.values()):
            conn = self.connections.get(sub.conn_id)
            if sub.symbol == symbol and conn is not None and conn.ready and self.delivers(sub):
                # Quote bars (MIDPOINT) and index values carry no volume: IB sends -1.
                quotes = sub.what_to_show != "TRADES" or (spec is not None and not spec.has_volume)
                volume, wap, count = (-1, -1, -1) if quotes else (bar.volume, bar.wap, bar.count)
                conn.send(50, 3, sub.req_id, bar.time, bar.open, bar.high, bar.low, bar.close,
                          volume, wap, count)  # fmt: skip
                delivered += 1
        for conn in list(self.connections.values()):
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
        return delivered

    # ---- faults -------------------------------------------------------------------------

    def delivers(self, sub: Subscription) -> bool:
        """True if a bar pushed now reaches ``sub``: it isn't muted, TWS is connected to
        IB, no market data farm is broken and its symbol is in no competing session."""
        return (
            not sub.muted
            and self.ib_connected
            and not self.broken_farms
            and not self.in_competing_session(sub.symbol)
        )

    def in_competing_session(self, symbol: str) -> bool:
        return self.competing_on and (self.competing is None or symbol.upper() in self.competing)

    def connectivity_lost(self) -> int:
        """TWS lost IB's servers: error 1100 to every connection; no realtime bar is
        delivered until :meth:`connectivity_restored` (pushed bars still become history).
        Returns the number of connections told."""
        self.ib_connected = False
        return self.inject_error(-1, 1100)

    def connectivity_restored(self, data_kept: bool = True) -> int:
        """IB's servers are back: 1102 (data maintained; the subscriptions deliver again) or
        1101 (data lost; as in real TWS the subscriptions made before stay silent forever,
        a new one delivers). Returns the number of connections told."""
        self.ib_connected = True
        if not data_kept:
            for sub in self.subscriptions.values():
                sub.muted = True
        return self.inject_error(-1, 1102 if data_kept else 1101)

    def farm_broken(self, farm: str = "usfarm") -> int:
        """Error 2103 "Market data farm connection is broken:<farm>" to every connection; no
        realtime bar is delivered while a farm is broken."""
        self.broken_farms.add(farm)
        return self.inject_error(-1, 2103, f"Market data farm connection is broken:{farm}")

    def farm_ok(self, farm: str = "usfarm", mute: Iterable[str] = ()) -> int:
        """Error 2104 "Market data farm connection is OK:<farm>"; the subscriptions of the
        symbols in ``mute`` stay silent forever (the bug reports' dead feed after a blip),
        the others deliver again."""
        self.broken_farms.discard(farm)
        for symbol in mute:
            self.mute(symbol)
        return self.inject_error(-1, 2104, f"Market data farm connection is OK:{farm}")

    def mute(self, symbol: str) -> int:
        """The current subscriptions of ``symbol`` silently stop delivering (no error);
        a new subscription delivers. Returns how many were muted."""
        subs = [s for s in self.active_subscriptions(symbol) if not s.muted]
        for sub in subs:
            sub.muted = True
        return len(subs)

    def trade_bust(self, symbol: str) -> int:
        """Error 10225 (a bust event deactivated the subscription) on each subscription of
        ``symbol``, which then stops delivering. Returns how many were told."""
        subs = [s for s in self.active_subscriptions(symbol) if not s.muted]
        for sub in subs:
            sub.muted = True
            conn = self.connections.get(sub.conn_id)
            if conn is not None and conn.ready:
                conn.send_error(sub.req_id, 10225)
        return len(subs)

    def competing_session(self, on: bool = True, symbols: Iterable[str] | None = None) -> int:
        """The same IB user logged in elsewhere with live data (``on``): error 10197 on each
        subscription of ``symbols`` (None: all; also on new subscriptions), no realtime bars
        for them, their history requests answered with 162 "...competing live session".
        Off: bars flow again to the existing subscriptions. Returns the 10197s sent."""
        self.competing_on = bool(on)
        self.competing = None if symbols is None else {s.upper() for s in symbols}
        if not on:
            return 0
        sent = 0
        for sub in self.active_subscriptions():
            conn = self.connections.get(sub.conn_id)
            if self.in_competing_session(sub.symbol) and conn is not None and conn.ready:
                conn.send_error(sub.req_id, 10197)
                sent += 1
        return sent

    def refuse_history(
        self, count: int = 1, code: int = 162, message: str | None = PACING_VIOLATION
    ) -> None:
        """Answer the next ``count`` history requests (any symbol) with error ``code``
        (default: IB's pacing violation)."""
        self.history_refusals += [(int(code), message)] * int(count)

    async def daily_restart(self, seconds: float) -> None:
        """IB Gateway's daily restart: close every connection, refuse connections for
        ``seconds``, then listen again on the same port. Returns at once (the restart
        runs in the background; ``listening`` tells)."""
        await self.stop()
        self.restarts += 1
        self._restart = asyncio.ensure_future(self._listen_after(float(seconds)))

    async def _listen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._restart = None
        await self.start()

    def take_client_id(self, client_id: int) -> None:
        """Another program connects with ``client_id``: this gateway refuses it with 326."""
        self.rejected_client_ids.add(int(client_id))

    def release_client_id(self, client_id: int) -> None:
        """The other program let ``client_id`` go (see :meth:`take_client_id`)."""
        self.rejected_client_ids.discard(int(client_id))

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> FakeTWS:
        """Listen on ``host:port`` (port 0 picks a free one, remembered for restarts)."""
        if self._server is not None:
            return self
        if self._changed is None:
            self._changed = asyncio.Condition()
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("fake TWS listening on %s:%s", self.host, self.port)
        await self._notify()
        return self

    async def stop(self) -> None:
        """Stop listening (new connections are refused) and close every connection; a
        pending :meth:`daily_restart` is called off."""
        restart, self._restart = self._restart, None
        if restart is not None and restart is not asyncio.current_task():
            restart.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def drop_connections(self) -> None:
        """Close every client socket, as when TWS exits or restarts; keep listening."""
        for conn in list(self.connections.values()):
            conn.close()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._notify()

    async def __aenter__(self) -> FakeTWS:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- waiting ------------------------------------------------------------------------

    def active_subscriptions(self, symbol: str | None = None) -> list[Subscription]:
        return [
            s for s in self.subscriptions.values() if symbol is None or s.symbol == symbol.upper()
        ]

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` holds after some gateway event; TimeoutError if not."""
        assert self._changed is not None, "start() first"
        cond = self._changed

        async def waiter() -> None:
            async with cond:
                await cond.wait_for(predicate)

        await asyncio.wait_for(waiter(), timeout)

    async def wait_subscribed(
        self,
        symbol: str,
        *,
        total: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Subscription:
        """Wait for an active realtime subscription of ``symbol`` (and, with ``total``, for
        at least that many subscribe requests for it since the gateway was created)."""
        symbol = symbol.upper()

        def done() -> bool:
            if total is not None and sum(s.symbol == symbol for s in self.subscribe_log) < total:
                return False
            return bool(self.active_subscriptions(symbol))

        await self.wait_until(done, timeout)
        return self.active_subscriptions(symbol)[-1]

    async def wait_cancelled(
        self,
        symbol: str,
        *,
        total: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``total`` cancelRealTimeBars requests for ``symbol`` arrived."""
        symbol = symbol.upper()
        await self.wait_until(
            lambda: sum(s.symbol == symbol for s in self.cancel_log) >= total, timeout
        )

    async def wait_connections(
        self,
        count: int = 1,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``count`` clients completed the API handshake (since creation)."""
        await self.wait_until(lambda: self.connect_count >= count, timeout)

    async def _notify(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            self._changed.notify_all()

    def pacing_violations(self) -> list[tuple[int, str]]:
        """The history requests so far that break IB's pacing rules: (index in
        ``history_log``, why)."""
        return pacing_violations(self.history_log)

    # ---- snapshot for the control channel ----------------------------------------------

    def state(self) -> dict[str, object]:
        return {
            "port": self.port,
            "listening": self.listening,
            "connections": len(self.connections),
            "connect_count": self.connect_count,
            "subscriptions": [
                {
                    "symbol": s.symbol,
                    "req_id": s.req_id,
                    "use_rth": s.use_rth,
                    "what_to_show": s.what_to_show,
                    "muted": s.muted,
                }
                for s in self.subscriptions.values()
            ],  # fmt: skip
            "subscribe_count": len(self.subscribe_log),
            "cancel_count": len(self.cancel_log),
            "history_requests": len(self.history_log),
            "pacing_violations": [why for _, why in self.pacing_violations()],
            "client_ids": list(self.client_id_log),
            "ib_connected": self.ib_connected,
            "broken_farms": sorted(self.broken_farms),
            "competing": self.competing_on,  # a competing live session, for the symbols:
            "competing_symbols": None if self.competing is None else sorted(self.competing),
            "history_refusals": len(self.history_refusals),
            "restarts": self.restarts,
        }

    def logs(self) -> dict[str, object]:
        """The request logs for the control channel: history requests (without their
        arrival times), realtime subscribe requests and contract lookups that found some."""
        return {
            "history": [{k: v for k, v in r.items() if k != "at"} for r in self.history_log],
            "subscribed": [
                {
                    "symbol": s.symbol,
                    "req_id": s.req_id,
                    "use_rth": s.use_rth,
                    "what_to_show": s.what_to_show,
                    "con_id": s.con_id,
                }
                for s in self.subscribe_log
            ],  # fmt: skip
            "details": list(self.details_log),
        }
