"""The IB feed's connection to TWS / IB Gateway: connect read-only, disconnect, route errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.core.bars import MinuteAggregator
from engine.feeds.base import Feed
from engine.feeds.ib import library
from engine.feeds.ib.errors import (
    FARM_OK_CODES,
    TWS_API_HELP,
    ConnectFailure,
    client_id_message,
    format_seconds,
    unreachable_message,
)

logger = logging.getLogger(__name__)


@dataclass
class SymbolState:
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


class IBConnection(Feed):
    """The settings and state of :class:`~engine.feeds.ib.feed.IBFeed`, and its connection.

    Every connection gets a new generation number: callbacks and queued items of an older
    connection are ignored."""

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
        self._symbols: dict[str, SymbolState] = {}
        self._realtime_req: dict[int, str] = {}  # reqId -> symbol, current connection
        self._request_errors: dict[str, tuple[int, str]] = {}  # symbol -> last error
        self._aggregator: MinuteAggregator | None = None
        self._bar_seconds = library.REALTIME_BAR_SECONDS
        self._calendar_ready: asyncio.Future[Any] | None = None

    async def _connect(self) -> None:
        """Connect read-only; raises :class:`ConnectFailure` with a readable message."""
        self._generation += 1
        generation = self._generation
        ib = library.new_client()
        loop = asyncio.get_running_loop()
        refused: asyncio.Future[ConnectFailure] = loop.create_future()

        def on_error(req_id: int, code: int, message: str, contract: Any = None) -> None:
            if generation != self._generation:
                return
            if code == 326 and not refused.done():
                refused.set_result(
                    ConnectFailure(client_id_message(self.client_id), permanent=True, code=326)
                )
            self._on_error(req_id, code, message, contract)

        def on_api_error(message: str) -> None:
            # The peer closing the socket during the handshake: fail now, not at timeout.
            if not refused.done() and "Peer closed" in str(message):
                refused.set_result(
                    ConnectFailure(
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
        kwargs.update(library.connect_options())
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
            raise ConnectFailure("Closed.")
        exc = connecting.exception()
        if isinstance(exc, TimeoutError):
            raise ConnectFailure(
                f"TWS / IB Gateway at {self.host}:{self.port} did not complete the API "
                f"handshake within {format_seconds(self.connect_timeout)} (is a login or "
                "'accept incoming connection' dialog open?)."
            )
        if isinstance(exc, OSError):
            raise ConnectFailure(
                unreachable_message(self.host, self.port),
                refused=isinstance(exc, ConnectionRefusedError),
            )
        raise ConnectFailure(f"Connecting to TWS / IB Gateway failed: {exc}")

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

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code in FARM_OK_CODES:
            return
        if req_id in self._realtime_req or req_id == -1:
            self._queue.put_nowait(("error", self._generation, req_id, code, message))
        elif contract is not None and getattr(contract, "symbol", None):
            self._request_errors[contract.symbol.upper()] = (code, message)
