"""How a socket is kept fed: signals by id from the database, other events as they happen.

:class:`SignalStream` is the delivery of both signal sockets (`/ws/signals/` and `/ws/ui/`,
docs/delivery.md); :class:`DirectDelivery` is how a consumer takes its group messages straight
from the in-process channel layer; the functions below look at Daphne's side of a socket
(how much it holds unsent).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from channels.db import database_sync_to_async

from signals import events, realtime
from signals.services import newest_signal_id, outcomes_of, signals_after

logger = logging.getLogger(__name__)

PAGE_ROWS = 200  # signals read from the database per page of a catch-up
MAX_PENDING_OUTCOMES = 10_000  # live outcomes held for signals a catch-up has yet to send
MAX_UNSENT = 256 * 1024  # bytes Daphne may hold for a socket before it counts as behind
DRAINED = 64 * 1024  # a catch-up page is read only once Daphne holds at most this
BEHIND_SECONDS = 10.0  # a socket that doesn't drain in this time is closed with CLOSE_BEHIND

# Close codes (docs/delivery.md). 4400 and 4403 mean "don't reconnect as you are".
CLOSE_BAD_URL = 4400  # a bad ?since= or ?symbols=: fix the URL
CLOSE_TOKEN = 4403  # the feed token was rotated: connect with the new one
CLOSE_BEHIND = 4008  # read too little for too long: reconnect with ?since=<last id>


if TYPE_CHECKING:  # the mixins below go before it in a consumer's bases
    from channels.generic.websocket import AsyncWebsocketConsumer as _Consumer
else:
    _Consumer = object


class DirectDelivery(_Consumer):
    """Group messages without Channels' per-message overhead, for the fan-out.

    A consumer names the message types it takes this way (``direct_types``, prefixes; their
    handling must need no database) and handles them in :meth:`deliver`. On the in-process
    layer (``scalpsite.layers.LocalChannelLayer``) :meth:`direct_join` attaches ``deliver``
    to the consumer's channel, so a group message is handed over with no queue and no task
    wake-up; on any other layer (``channels_redis``) the messages come through
    :meth:`dispatch`, which skips Channels' database-connection cleanup (a thread hop) that
    it runs before every other handler. Mix in before ``AsyncWebsocketConsumer``.
    """

    direct_types: tuple[str, ...] = ()

    async def deliver(self, message: dict) -> None:
        raise NotImplementedError

    async def direct_join(self, *groups: str) -> None:
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, self.deliver)
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def direct_leave(self, *groups: str) -> None:
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def dispatch(self, message: dict) -> None:
        if message["type"].startswith(self.direct_types):
            await self.deliver(message)
        else:
            await super().dispatch(message)


# --- Daphne's side of one socket -----------------------------------------------------------


def daphne_socket(send):
    """Daphne's protocol object for the socket behind an ASGI ``send``, or None.

    Daphne gives each connection ``functools.partial(server.handle_reply, protocol)``
    (daphne/server.py), which Channels' session middleware keeps as ``real_send`` of a bound
    method; the protocol is autobahn's, on a Twisted TCP transport. Under any other server (or
    the test communicator) this is None and the socket counts as never behind.
    """
    for _ in range(3):
        if isinstance(send, functools.partial):
            protocol = send.args[0] if send.args else None
            return protocol if hasattr(protocol, "transport") else None
        send = getattr(getattr(send, "__self__", None), "real_send", None)
    return None


def unsent_bytes(protocol) -> int:
    """Bytes Daphne holds for the socket that the kernel has not taken yet (0: unknown).

    Twisted keeps them in ``dataBuffer[offset:]`` and ``_tempDataBuffer``
    (``twisted.internet.abstract.FileDescriptor``)."""
    transport: Any = getattr(protocol, "transport", None)
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except (AttributeError, TypeError):
        return 0


def wait_for_close_reply(protocol, seconds: float) -> None:
    """Let a stalled reader reach our close frame: autobahn otherwise drops the connection
    (with what it still holds, close frame included) 1 s after sending it."""
    if hasattr(protocol, "closeHandshakeTimeout"):
        protocol.closeHandshakeTimeout = seconds


# --- delivery by id ------------------------------------------------------------------------


class PageRow(NamedTuple):
    """One signal of a catch-up page: its frames (the signal, then any of its stored
    outcomes a program gets) and the horizons of the outcomes those frames carry."""

    id: int
    frames: tuple[str, ...]
    outcomes: frozenset[str] = frozenset()


class SignalStream(DirectDelivery):
    """Every stored signal to one socket, once each, in id order (docs/delivery.md).

    ``position`` is the highest signal id the socket has accounted for: sent, or skipped by its
    filter. A signal wake-up whose id is ``position + 1`` is sent as it came, with no query (so
    one signal to 1,000 sockets costs no database work). Anything else (a gap, a wake-up with
    no signal, a socket that is behind) raises ``target``, and one catch-up task reads
    ``position < id <= target`` from the database a page at a time, each page only once Daphne
    holds at most DRAINED bytes for the socket.
    """

    position: int | None = None
    target = 0
    catching_up: asyncio.Task | None = None
    protocol = None
    closing = False
    symbols: frozenset[str] | None = None  # None: every symbol
    # Live outcomes of signals not sent yet, by (signal id, horizon): sent once the position
    # passes their signal, unless the catch-up page that sent it carried them already.
    pending_outcomes: dict[tuple[int, str], str] | None = None
    # Outcomes a catch-up page sent from the database (newest MAX_PENDING_OUTCOMES): their
    # live event, on its way while the page was read, is not sent again.
    carried_outcomes: dict[tuple[int, str], None] | None = None

    def signal_frame(self, event: events.SignalEvent) -> str:
        """What this socket sends for a signal event."""
        raise NotImplementedError

    def page_frames(
        self, event: events.SignalEvent, outcomes: dict[str, dict]
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        """What a catch-up sends for a stored signal with its stored ``outcomes`` (by
        horizon label), and the horizons those frames carry. Runs in a thread."""
        return (self.signal_frame(event),), frozenset()

    def read_page(self, after: int, upto: int) -> list[PageRow]:
        """At most PAGE_ROWS signals with ``after < id <= upto`` that this socket wants, in id
        order, each with its frames. Runs in a thread."""
        rows = signals_after(after, upto=upto, symbols=self.symbols, limit=PAGE_ROWS)
        stored = outcomes_of(row.id for row in rows) if rows else {}
        page = []
        for row in rows:
            frames, carried = self.page_frames(row.to_event(), stored.get(row.id, {}))
            page.append(PageRow(row.id, frames, carried))
        return page

    async def stream_start(self, group: str, since: int | None) -> None:
        """Join ``group``, then start at ``since``, or at the newest stored id (live only):
        joining first means no wake-up falls between the query and the first one received."""
        await self.direct_join(group)
        self.protocol = daphne_socket(self.base_send)
        newest = await database_sync_to_async(newest_signal_id)()
        self.position = newest if since is None else since
        realtime.watch(self)
        self.wake(newest)

    async def stream_stop(self, *groups: str) -> None:
        self.closing = True
        realtime.unwatch(self)
        if self.catching_up is not None:
            self.catching_up.cancel()
        await self.direct_leave(*groups)

    async def stream_close(self, code: int) -> None:
        self.closing = True
        realtime.unwatch(self)
        await self.close(code=code)

    def behind(self) -> bool:
        return unsent_bytes(self.protocol) > MAX_UNSENT

    async def on_signal(self, signal_id: int, frame: str | None) -> None:
        """A signal wake-up; ``frame`` is what to send for it, None when the filter skips it."""
        if self.closing:
            return
        if (
            self.catching_up is None
            and self.position is not None
            and signal_id == self.position + 1
            and not self.behind()
        ):
            self.position = signal_id
            if frame is not None:
                await self.send(text_data=frame)
            await self.send_pending_outcomes()
        else:
            self.wake(signal_id)

    def wake(self, upto: int) -> None:
        """Make sure every stored signal up to id ``upto`` gets sent."""
        self.target = max(self.target, upto)
        if (
            self.catching_up is None
            and not self.closing
            and self.position is not None
            and self.position < self.target
        ):
            self.catching_up = asyncio.get_running_loop().create_task(self.catch_up())

    async def catch_up(self) -> None:
        try:
            while self.position is not None and self.position < self.target:
                if not await self.wait_until_drained():
                    return
                upto = self.target
                page = await database_sync_to_async(self.read_page)(self.position, upto)
                if self.closing:
                    return
                for row in page:
                    for frame in row.frames:
                        await self.send(text_data=frame)
                    for label in row.outcomes:
                        self.carried((row.id, label))
                self.position = page[-1].id if len(page) == PAGE_ROWS else upto
                await self.send_pending_outcomes()
        except Exception:  # the watch wakes the socket again within a second
            logger.exception("catching a socket up from the database failed")
        finally:
            self.catching_up = None

    async def wait_until_drained(self) -> bool:
        """Wait until Daphne holds at most DRAINED bytes for the socket; False once it has been
        closed for not getting there in BEHIND_SECONDS."""
        deadline = time.monotonic() + BEHIND_SECONDS
        while not self.closing:
            if unsent_bytes(self.protocol) <= DRAINED:
                return True
            if time.monotonic() >= deadline:
                logger.warning(
                    "closing a socket that read too little for %g s (code %d)",
                    BEHIND_SECONDS,
                    CLOSE_BEHIND,
                )
                wait_for_close_reply(self.protocol, BEHIND_SECONDS)
                await self.stream_close(CLOSE_BEHIND)
            else:
                await asyncio.sleep(0.05)
        return False

    async def on_outcome(self, signal_id: int, horizon: str, frame: str) -> None:
        """A live outcome of signal ``signal_id`` (its socket's filter takes it): sent now
        when the signal has been sent, else held until the position passes it; outcomes
        are not replayed, so a socket that is behind skips it (docs/delivery.md)."""
        if self.closing or self.position is None:
            return
        if self.carried_outcomes is not None and (signal_id, horizon) in self.carried_outcomes:
            return  # a catch-up page sent it from the database
        if signal_id <= self.position:
            await self.send_unless_behind(frame)
            return
        if self.pending_outcomes is None:
            self.pending_outcomes = {}
        if len(self.pending_outcomes) < MAX_PENDING_OUTCOMES:
            self.pending_outcomes[(signal_id, horizon)] = frame

    def carried(self, key: tuple[int, str]) -> None:
        """A catch-up page sent outcome ``key``: never send it again."""
        if self.pending_outcomes:
            self.pending_outcomes.pop(key, None)
        if self.carried_outcomes is None:
            self.carried_outcomes = {}
        self.carried_outcomes[key] = None
        if len(self.carried_outcomes) > MAX_PENDING_OUTCOMES:
            del self.carried_outcomes[next(iter(self.carried_outcomes))]

    async def send_pending_outcomes(self) -> None:
        if not self.pending_outcomes or self.position is None:
            return
        ready = sorted(key for key in self.pending_outcomes if key[0] <= self.position)
        for key in ready:
            await self.send_unless_behind(self.pending_outcomes.pop(key))

    async def send_unless_behind(self, frame: str) -> None:
        """Events that are not signals go out as they happen and are not replayed: a socket
        that is behind (or closing) skips them."""
        if not self.closing and not self.behind():
            await self.send(text_data=frame)

    async def watch_round(self, *, missed: int, newest: int, feed_token: str) -> None:
        """The process's watch (``realtime.watch``): ``missed`` was stored a round ago."""
        if self.position is not None and self.position < missed:
            self.wake(newest)
