"""Sockets that deliver signals: `/ws/signals/` for programs (JSON), `/ws/ui/` for pages.

Both deliver signals the same way (:class:`SignalStream`, docs/delivery.md): each connection
keeps its own position and is never sent a signal twice or out of id order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ValidationError

from engine.core.inputs import InputError, load_json, parse_whole
from engine.services import token_matches
from signals import realtime
from signals.auth import feed_token_valid, token_from_scope
from signals.realtime import GROUP_BARS, GROUP_FEED, GROUP_UI
from watchlists.services import symbol_normalize

logger = logging.getLogger(__name__)

PAGE_ROWS = 200  # signals read from the database per page of a catch-up
MAX_UNSENT = 256 * 1024  # bytes Daphne may hold for a socket before it counts as behind
DRAINED = 64 * 1024  # a catch-up page is read only once Daphne holds at most this
BEHIND_SECONDS = 10.0  # a socket that doesn't drain in this time is closed with CLOSE_BEHIND

# Close codes (docs/delivery.md). 4400 and 4403 mean "don't reconnect as you are".
CLOSE_BAD_URL = 4400  # a bad ?since= or ?symbols=: fix the URL
CLOSE_TOKEN = 4403  # the feed token was rotated: connect with the new one
CLOSE_BEHIND = 4008  # read too little for too long: reconnect with ?since=<last id>

MAX_SIGNAL_ID = 2**63 - 1


def parse_since(raw: str) -> int | None:
    if raw == "":
        return None
    return parse_whole(raw, name="since", maximum=MAX_SIGNAL_ID)


def parse_symbols(raw: object) -> frozenset[str]:
    """Symbols from ``"AAPL,MSFT"`` or ``["AAPL", "MSFT"]``; ValueError with a sentence."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError('"symbols" must be a list like ["AAPL", "MSFT"].')
    try:
        return frozenset(symbol_normalize(item) for item in items if str(item).strip())
    except ValidationError as err:
        raise ValueError(" ".join(err.message_dict["symbols"])) from None


def _query(scope: dict) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


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
    transport = getattr(protocol, "transport", None)
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


class SignalStream:
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

    def signal_frame(self, event: dict) -> str:
        """What this socket sends for a signal event."""
        raise NotImplementedError

    def read_page(self, after: int, upto: int) -> list[tuple[int, str]]:
        """(id, frame) of at most PAGE_ROWS signals with ``after < id <= upto`` that this socket
        wants, in id order. Runs in a thread."""
        from signals.models import Signal

        rows = Signal.objects.filter(id__gt=after, id__lte=upto).order_by("id")
        if self.symbols is not None:
            rows = rows.filter(symbol__in=self.symbols)
        return [(row.id, self.signal_frame(row.to_event())) for row in rows[:PAGE_ROWS]]

    async def stream_start(self, group: str, deliver, since: int | None) -> None:
        """Join ``group`` (``deliver`` gets its messages straight from the in-process layer),
        then start at ``since``, or at the newest stored id (live only): joining first means
        no wake-up falls between the query and the first one received."""
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, deliver)
        await self.channel_layer.group_add(group, self.channel_name)
        self.protocol = daphne_socket(self.base_send)
        newest = await database_sync_to_async(realtime.newest_signal_id)()
        self.position = newest if since is None else since
        realtime.watch(self)
        self.wake(newest)

    async def stream_stop(self, *groups: str) -> None:
        self.closing = True
        realtime.unwatch(self)
        if self.catching_up is not None:
            self.catching_up.cancel()
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

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
            while self.position < self.target:
                if not await self.wait_until_drained():
                    return
                upto = self.target
                page = await database_sync_to_async(self.read_page)(self.position, upto)
                if self.closing:
                    return
                for _, frame in page:
                    await self.send(text_data=frame)
                self.position = page[-1][0] if len(page) == PAGE_ROWS else upto
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

    async def send_unless_behind(self, frame: str) -> None:
        """Events that are not signals go out as they happen and are not replayed: a socket
        that is behind (or closing) skips them."""
        if not self.closing and not self.behind():
            await self.send(text_data=frame)

    async def watch_round(self, *, missed: int, newest: int, feed_token: str) -> None:
        """The process's watch (``realtime.watch``): ``missed`` was stored a round ago."""
        if self.position is not None and self.position < missed:
            self.wake(newest)


class SignalFeedConsumer(SignalStream, AsyncWebsocketConsumer):
    """Programs: token auth, ``?since=`` resume, ``?symbols=`` filter, a few JSON commands."""

    token: str | None = None
    bars = False

    async def connect(self) -> None:
        self.token = token_from_scope(self.scope)
        if not await database_sync_to_async(feed_token_valid)(self.token):
            await self.close()  # before accept: Daphne answers HTTP 403
            return
        await self.accept()
        query = _query(self.scope)
        try:
            if "symbols" in query:
                self.symbols = parse_symbols(query["symbols"][0])
            since = parse_since(query.get("since", [""])[0])
        except ValueError as err:
            await self.error(str(err))
            await self.close(code=CLOSE_BAD_URL)
            return
        await self.stream_start(GROUP_FEED, self.feed_event, since)

    async def disconnect(self, code) -> None:
        await self.stream_stop(GROUP_FEED, GROUP_BARS)

    def signal_frame(self, event: dict) -> str:
        return realtime.event_text(event)

    async def watch_round(self, *, missed: int, newest: int, feed_token: str) -> None:
        if not token_matches(self.token, feed_token):
            await self.stream_close(CLOSE_TOKEN)
        else:
            await super().watch_round(missed=missed, newest=newest, feed_token=feed_token)

    async def send_event(self, event: dict) -> None:
        await self.send(text_data=realtime.event_text(event))

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale DB connections (a thread hop) before every handler; the
        # fan-out handler never touches the database, and it runs once per client per event.
        if message["type"] == "feed.event":
            await self.feed_event(message)
        else:
            await super().dispatch(message)

    async def feed_event(self, message: dict) -> None:
        """A group message: directly from the in-process layer, or through ``dispatch``."""
        kind = message["kind"]
        if kind == "wake":
            self.wake(message["id"])
            return
        wanted = self.symbols is None or message["symbol"] in self.symbols
        if kind == "signal":
            await self.on_signal(message["id"], message["text"] if wanted else None)
        elif kind != "bar" or (self.bars and wanted):
            await self.send_unless_behind(message["text"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            frame = load_json(text_data if text_data is not None else bytes_data)
        except InputError as err:
            await self.error(f'Frames must be JSON objects like {{"action": "ping"}}: {err}')
            return
        if not isinstance(frame, dict):
            await self.error('Frames must be JSON objects like {"action": "ping"}.')
            return
        action = frame.get("action")
        if action == "ping":
            await self.send_event({"event": "pong"})
        elif action in ("subscribe", "unsubscribe"):
            await self.change_subscription(action, frame)
        else:
            await self.error(
                f"Unknown action {action!r}; use subscribe, unsubscribe or ping."
                if action is not None
                else 'Missing "action"; use subscribe, unsubscribe or ping.'
            )

    async def change_subscription(self, action: str, frame: dict) -> None:
        if frame.get("stream") is not None:
            if frame["stream"] != "bars":
                await self.error(f"Unknown stream {frame['stream']!r}; the only stream is bars.")
                return
            self.bars = action == "subscribe"
            if self.bars:
                await self.channel_layer.group_add(GROUP_BARS, self.channel_name)
            else:
                await self.channel_layer.group_discard(GROUP_BARS, self.channel_name)
        if "symbols" in frame:
            try:
                symbols = parse_symbols(frame["symbols"])
            except ValueError as err:
                await self.error(str(err))
                return
            if action == "subscribe":
                self.symbols = symbols if self.symbols is None else self.symbols | symbols
            elif self.symbols is not None:
                self.symbols = self.symbols - symbols
        elif frame.get("stream") is None:
            await self.error(f'"{action}" needs "symbols" or "stream".')
            return
        await self.send_event(
            {
                "event": "subscribed",
                "symbols": None if self.symbols is None else sorted(self.symbols),
                "bars": self.bars,
            }
        )

    async def error(self, message: str) -> None:
        await self.send_event({"event": "error", "message": message})


class UiConsumer(SignalStream, AsyncWebsocketConsumer):
    """Pages: the logged-in session's browser gets HTML fragments for htmx to swap in.

    ``?since=<id>`` (the newest signal the page shows; dashboard.js adds it on every
    connect) resumes the live list exactly where the page is, as ``/ws/signals/`` does."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.accept()
        try:
            since = parse_since(_query(self.scope).get("since", [""])[0])
        except ValueError:
            await self.close(code=CLOSE_BAD_URL)
            return
        await self.stream_start(GROUP_UI, self.ui_message, since)

    async def disconnect(self, code) -> None:
        await self.stream_stop(GROUP_UI)

    def signal_frame(self, event: dict) -> str:
        return realtime.signal_html(event)

    async def dispatch(self, message: dict) -> None:
        if message["type"].startswith("ui."):  # no database here: skip Channels' per-message hop
            await self.ui_message(message)
        else:
            await super().dispatch(message)

    async def ui_message(self, message: dict) -> None:
        kind = message["type"]
        if kind == "ui.signal":
            await self.on_signal(message["id"], message["html"])
        elif kind == "ui.wake":
            self.wake(message["id"])
        else:
            await self.send_unless_behind(message["html"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Pages only listen; commands go through the forms (CSRF-protected POSTs).
        return
