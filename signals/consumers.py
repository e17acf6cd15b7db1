"""The sockets: `/ws/signals/` for programs (JSON), `/ws/ui/` for pages (HTML), and
`/ws/engine/`, the worker's bridge in (events up, commands down).

Both signal sockets deliver through :class:`signals.stream.SignalStream` (docs/delivery.md):
each connection keeps its own position and is never sent a signal twice or out of id order.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ValidationError

from engine.core.bars import parse_time
from engine.core.inputs import InputError, load_json, parse_whole
from engine.core.outcomes import parse_horizons
from engine.tokens import engine_token_valid, feed_token_valid, token_from_scope, token_matches
from signals import events, realtime
from signals.realtime import GROUP_BARS, GROUP_ENGINE, GROUP_FEED, GROUP_UI
from signals.stream import CLOSE_BAD_URL, CLOSE_TOKEN, DirectDelivery, SignalStream
from watchlists.services import symbol_normalize

logger = logging.getLogger(__name__)

MAX_SIGNAL_ID = 2**63 - 1


def parse_since(raw: str) -> int | None:
    if raw == "":
        return None
    return parse_whole(raw, name="since", maximum=MAX_SIGNAL_ID)


def parse_symbols(raw: object) -> frozenset[str]:
    """Watchlist items from ``"AAPL,ES:FUT:CME"`` or ``["AAPL", "ES:FUT:CME"]``, as their
    canonical texts (the names signals carry); ValueError with the item parser's sentence."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ValueError('"symbols" must be a list like ["AAPL", "ES:FUT:CME"].')
    try:
        return frozenset(symbol_normalize(item) for item in items if str(item).strip())
    except ValidationError as err:
        raise ValueError(" ".join(err.message_dict["symbols"])) from None


def _query(scope: dict) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


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
        await self.stream_start(GROUP_FEED, since)

    async def disconnect(self, code) -> None:
        await self.stream_stop(GROUP_FEED, GROUP_BARS)

    def signal_frame(self, event: events.SignalEvent) -> str:
        return events.text(event)

    def page_frames(
        self, event: events.SignalEvent, outcomes: dict[str, dict]
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        """A re-sent signal, then its stored final outcomes (docs/delivery.md)."""
        frames = [self.signal_frame(event)]
        for label, values in outcomes.items():
            frames.append(events.text(outcome_event(event, label, values)))
        return tuple(frames), frozenset(outcomes)

    async def watch_round(self, *, missed: int, newest: int, feed_token: str) -> None:
        if not token_matches(self.token, feed_token):
            await self.stream_close(CLOSE_TOKEN)
        else:
            await super().watch_round(missed=missed, newest=newest, feed_token=feed_token)

    async def send_event(self, event: events.Event) -> None:
        await self.send(text_data=events.text(event))

    direct_types = ("feed.",)

    async def deliver(self, message: dict) -> None:
        """A ``feed.event`` of the fan-out (``realtime.publish``): a signal's wake-up, a
        status or a bar."""
        kind = message["kind"]
        if kind == "wake":
            self.wake(message["id"])
            return
        wanted = self.symbols is None or message["symbol"] in self.symbols
        if kind == "signal":
            await self.on_signal(message["id"], message["text"] if wanted else None)
        elif kind == "outcome":
            if wanted:
                await self.on_outcome(message["id"], message["horizon"], message["text"])
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
            await self.send_event(events.pong())
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
        await self.send_event(events.subscribed(self.symbols, bars=self.bars))

    async def error(self, message: str) -> None:
        await self.send_event(events.error(message))


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
        await self.stream_start(GROUP_UI, since)

    async def disconnect(self, code) -> None:
        await self.stream_stop(GROUP_UI)

    def signal_frame(self, event: events.SignalEvent) -> str:
        return realtime.signal_html(event, horizons=realtime.outcome_horizons())

    def page_frames(
        self, event: events.SignalEvent, outcomes: dict[str, dict]
    ) -> tuple[tuple[str, ...], frozenset[str]]:
        """The row with its stored outcomes filled in."""
        html = realtime.signal_html(event, horizons=realtime.outcome_horizons(), outcomes=outcomes)
        return (html,), frozenset(outcomes)

    direct_types = ("ui.",)

    async def deliver(self, message: dict) -> None:
        """A ``ui.*`` message of the fan-out: a signal's wake-up, or HTML to swap in."""
        kind = message["type"]
        if kind == "ui.signal":
            await self.on_signal(message["id"], message["html"])
        elif kind == "ui.outcome":
            await self.on_outcome(message["id"], message["horizon"], message["html"])
        elif kind == "ui.wake":
            self.wake(message["id"])
        else:
            await self.send_unless_behind(message["html"])

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # Pages only listen; commands go through the forms (CSRF-protected POSTs).
        return


def outcome_event(event: events.SignalEvent, label: str, values: dict) -> events.OutcomeEvent:
    """Signal ``event``'s stored outcome at horizon ``label`` ("1m") as its live event."""
    return events.outcome(
        id=event["id"],
        horizon=parse_horizons(label)[0],
        return_pct=values.get("return_pct"),
        mfe_pct=values.get("mfe_pct"),
        mae_pct=values.get("mae_pct"),
        symbol=event["symbol"],
        rule_id=event["rule_id"],
        close_time=parse_time(event["timestamp"]),
    )


class EngineBridgeConsumer(DirectDelivery, AsyncWebsocketConsumer):
    """`/ws/engine/`: the worker's events come up here and go to :func:`realtime.publish`;
    Start / Stop / Reload go down to the worker (``realtime.engine_command``)."""

    # A frame from the worker needs no database: skip Channels' per-message thread hop.
    direct_types = ("websocket.receive",)

    async def connect(self) -> None:
        if not await database_sync_to_async(engine_token_valid)(token_from_scope(self.scope)):
            await self.close()
            return
        await self.channel_layer.group_add(GROUP_ENGINE, self.channel_name)
        await self.accept()
        await realtime.bridge_connected()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(GROUP_ENGINE, self.channel_name)

    async def deliver(self, message: dict) -> None:
        await self.websocket_receive(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            event = json.loads(text_data or bytes_data)
        except (ValueError, TypeError):
            logger.warning("bridge: dropped a frame that is not JSON")
            return
        if not isinstance(event, dict) or event.get("event") == events.HELLO:
            return
        await realtime.publish(event)

    async def engine_command(self, message: dict) -> None:
        await self.send(text_data=json.dumps({"command": message["command"]}))
