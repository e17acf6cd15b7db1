"""Sockets that deliver signals: `/ws/signals/` for programs (JSON), `/ws/ui/` for pages."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ValidationError

from signals.auth import feed_token_valid, token_from_scope
from signals.realtime import GROUP_BARS, GROUP_FEED, GROUP_UI
from watchlists.services import symbol_normalize

BACKLOG_BATCH = 1000


def _backlog(after: int, symbols: frozenset[str] | None, limit: int) -> list[dict]:
    from signals.models import Signal

    rows = Signal.objects.filter(id__gt=after).order_by("id")
    if symbols is not None:
        rows = rows.filter(symbol__in=symbols)
    return [row.to_event() for row in rows[:limit]]


def parse_since(raw: str) -> int | None:
    if raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(f"since={raw!r} is not a signal id: use a whole number, 0 or more.")
    return int(raw)


def parse_symbols(raw: object) -> frozenset[str]:
    """Symbols from ``"AAPL,MSFT"`` or ``["AAPL", "MSFT"]``; ValueError with a sentence."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError('"symbols" must be a list like ["AAPL", "MSFT"].')
    try:
        return frozenset(symbol_normalize(item) for item in items if str(item).strip())
    except ValidationError as err:
        raise ValueError(" ".join(err.message_dict["symbols"])) from None


class SignalFeedConsumer(AsyncWebsocketConsumer):
    """Programs: token auth, ``?since=`` resume, ``?symbols=`` filter, a few JSON commands."""

    async def connect(self) -> None:
        if not await database_sync_to_async(feed_token_valid)(token_from_scope(self.scope)):
            await self.close()  # before accept: Daphne answers HTTP 403
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.symbols: frozenset[str] | None = None
        self.bars = False
        self.last_sent = 0
        # Live events that arrive (directly) while the backlog is being sent wait here.
        self.live = False
        self.pending: list[dict] = []
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, self.deliver)
        await self.channel_layer.group_add(GROUP_FEED, self.channel_name)
        await self.accept()
        try:
            if "symbols" in query:
                self.symbols = parse_symbols(query["symbols"][0])
            since_id = parse_since(query.get("since", [""])[0])
        except ValueError as err:
            await self.send_event({"event": "error", "message": str(err)})
            await self.close(code=4400)
            return
        if since_id is not None:
            await self.send_backlog(since_id)
        while self.pending:
            await self.feed_event(self.pending.pop(0))
        self.live = True

    async def disconnect(self, code) -> None:
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        await self.channel_layer.group_discard(GROUP_FEED, self.channel_name)
        await self.channel_layer.group_discard(GROUP_BARS, self.channel_name)

    async def deliver(self, message: dict) -> None:
        """The in-process layer's direct delivery (see ``scalpsite.layers``)."""
        if self.live:
            await self.feed_event(message)
        else:
            self.pending.append(message)

    async def send_backlog(self, since: int) -> None:
        self.last_sent = since
        while True:
            batch = await database_sync_to_async(_backlog)(
                self.last_sent, self.symbols, BACKLOG_BATCH
            )
            for event in batch:
                await self.send_event(event)
                self.last_sent = event["id"]
            if len(batch) < BACKLOG_BATCH:
                return

    async def send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, separators=(",", ":")))

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale DB connections (a thread hop) before every handler; the
        # fan-out handler never touches the database, and it runs once per client per event.
        if message["type"] == "feed.event":
            await self.feed_event(message)
        else:
            await super().dispatch(message)

    async def feed_event(self, message: dict) -> None:
        kind = message["kind"]
        if kind == "signal":
            if message["id"] <= self.last_sent:
                return  # already sent from the backlog
            self.last_sent = message["id"]
        elif kind == "bar" and not self.bars:
            return
        if (
            self.symbols is not None
            and kind in ("signal", "bar")
            and (message["symbol"] not in self.symbols)
        ):
            return
        await self.send(text_data=message["text"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            frame = json.loads(text_data if text_data is not None else bytes_data)
            if not isinstance(frame, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
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


class UiConsumer(AsyncWebsocketConsumer):
    """Pages: the logged-in session's browser gets HTML fragments for htmx to swap in."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.accept()
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, self.ui_html)
        await self.channel_layer.group_add(GROUP_UI, self.channel_name)

    async def disconnect(self, code) -> None:
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        await self.channel_layer.group_discard(GROUP_UI, self.channel_name)

    async def dispatch(self, message: dict) -> None:
        if message["type"] == "ui.html":  # no database here: skip Channels' per-message hop
            await self.ui_html(message)
        else:
            await super().dispatch(message)

    async def ui_html(self, message: dict) -> None:
        await self.send(text_data=message["html"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Pages only listen; commands go through the forms (CSRF-protected POSTs).
        return
