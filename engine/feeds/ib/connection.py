"""The connection to TWS / IB Gateway: connect read-only with a readable failure, disconnect.

Used by :class:`~engine.feeds.ib.feed.IBFeed` and by the Settings page's connection test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Literal

from engine.feeds.ib.errors import (
    TWS_API_HELP,
    ConnectFailure,
    client_id_message,
    format_seconds,
    unreachable_message,
)
from engine.feeds.ib.library import ErrorCallback, IBClient

logger = logging.getLogger(__name__)

# What a connection attempt waits for: the handshake, a refusal, or the feed being closed.
Waiter = asyncio.Future[None] | asyncio.Future[ConnectFailure] | asyncio.Future[Literal[True]]


class IBConnection:
    """At most one :class:`~engine.feeds.ib.library.IBClient` at a time, connected read-only.

    Every connection attempt gets a new ``generation`` number, and so does every disconnect:
    events of an older connection are not passed on, and the feed tags what it queues with
    the generation to ignore the rest. ``on_error`` gets the current connection's errors
    (``req_id, code, message, symbol``), ``on_disconnected`` the loss of it."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        connect_timeout: float,
        on_error: ErrorCallback | None = None,
        on_disconnected: Callable[[], None] | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self.client_id = int(client_id)
        self.connect_timeout = connect_timeout
        self.client: IBClient | None = None  # set while connecting and connected
        self.generation = 0
        self._on_error = on_error
        self._on_disconnected = on_disconnected

    async def connect(self, closed: asyncio.Event | None = None) -> IBClient:
        """Connect read-only and return the client; raises :class:`ConnectFailure` with a
        readable message. Setting ``closed`` ends the attempt (``ConnectFailure("Closed.")``).
        """
        self.generation += 1
        generation = self.generation
        closed = closed or asyncio.Event()
        client = IBClient()
        loop = asyncio.get_running_loop()
        refused: asyncio.Future[ConnectFailure] = loop.create_future()

        def on_error(req_id: int, code: int, message: str, symbol: str | None) -> None:
            if generation != self.generation:
                return
            if code == 326 and not refused.done():
                refused.set_result(
                    ConnectFailure(client_id_message(self.client_id), permanent=True, code=326)
                )
            if self._on_error is not None:
                self._on_error(req_id, code, message, symbol)

        def on_api_error(message: str) -> None:
            # The peer closing the socket during the handshake: fail now, not at timeout.
            if not refused.done() and "Peer closed" in message:
                refused.set_result(
                    ConnectFailure(
                        f"TWS / IB Gateway at {self.host}:{self.port} closed the API "
                        f"connection (client id {self.client_id} in use, or this host not "
                        f"in Trusted IPs in {TWS_API_HELP})."
                    )
                )

        def on_disconnected() -> None:
            if generation == self.generation and self._on_disconnected is not None:
                self._on_disconnected()

        client.on_error(on_error)
        client.on_api_error(on_api_error)
        self.client = client
        connecting = asyncio.ensure_future(
            client.connect(self.host, self.port, self.client_id, timeout=self.connect_timeout)
        )
        closing = asyncio.ensure_future(closed.wait())
        waiting: set[Waiter] = {connecting, refused, closing}
        try:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
        if connecting in done and connecting.exception() is None:
            client.on_disconnected(on_disconnected)
            logger.info(
                "connected to %s:%s, server version %s",
                self.host,
                self.port,
                client.server_version(),
            )
            return client
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        self.disconnect()
        if refused.done():
            raise refused.result()
        if closed.is_set():
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

    def disconnect(self) -> None:
        """Drop the connection (or the attempt), if any; later events of it are ignored."""
        client, self.client = self.client, None
        self.generation += 1
        if client is not None:
            client.disconnect()
