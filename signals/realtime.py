"""The one path for live pushes: engine events in, program (JSON) and page (HTML) sockets out.

The engine worker sends its events over the `/ws/engine/` bridge; the bridge consumer hands
each one to :func:`publish`. Signals are broadcast strictly in id order, each once per Daphne
process: a gap in the ids (events the bridge missed while it was down) is filled from SQLite,
the source of truth, before the newer signal goes out.
"""

from __future__ import annotations

import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

GROUP_FEED = "feed"  # /ws/signals/ consumers: signal and status events (JSON)
GROUP_BARS = "bars"  # /ws/signals/ consumers that subscribed to the bar stream
GROUP_UI = "ui"  # /ws/ui/ consumers: HTML fragments for htmx
GROUP_ENGINE = "engine"  # the bridge consumer: commands down to the worker


class _Broadcast:
    """Per-process broadcast position (the id of the last signal sent to the groups)."""

    def __init__(self) -> None:
        self.last_id: int | None = None
        self.lock = asyncio.Lock()


_state = _Broadcast()


def _max_signal_id() -> int:
    from signals.models import Signal

    return Signal.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _signals_between(after: int, before: int | None) -> list[dict]:
    from signals.models import Signal

    rows = Signal.objects.filter(id__gt=after).order_by("id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    return [row.to_event() for row in rows[:10_000]]


async def bridge_connected() -> None:
    """The worker (re)connected: send the signals stored while the bridge was down."""
    async with _state.lock:
        if _state.last_id is None:
            # First bridge of this process: clients that were away resume with ?since=.
            _state.last_id = await database_sync_to_async(_max_signal_id)()
            return
        missed = await database_sync_to_async(_signals_between)(_state.last_id, None)
        for event in missed:
            await _send_signal(event)


async def publish(event: dict) -> None:
    """Fan an engine event out to every program and page socket."""
    kind = event.get("event")
    if kind == "signal":
        async with _state.lock:
            await _publish_signal(event)
    elif kind == "status":
        await _feed_send(GROUP_FEED, event)
        await _group_html(render_to_string("engine/partials/status.html", {"status": event}))
    elif kind == "bar":
        await _feed_send(GROUP_BARS, event)
        await _group_html(render_to_string("engine/partials/tile.html", {"bar": event}))
    else:
        logger.warning("ignoring engine event of unknown kind %r", kind)


async def _publish_signal(event: dict) -> None:
    signal_id = int(event["id"])
    if _state.last_id is None:
        _state.last_id = signal_id - 1
    if signal_id <= _state.last_id:
        return  # already sent
    if signal_id > _state.last_id + 1:
        for missed in await database_sync_to_async(_signals_between)(_state.last_id, signal_id):
            await _send_signal(missed)
    await _send_signal(event)


async def _send_signal(event: dict) -> None:
    _state.last_id = event["id"]
    await _feed_send(GROUP_FEED, event)
    await _group_html(render_to_string("signals/partials/signal_live.html", {"signal": event}))


async def _feed_send(group: str, event: dict) -> None:
    # Serialised once here, not once per client; the layer copies the message per channel,
    # so it carries only flat fields: what the consumers filter on, and the text to send.
    message = {
        "type": "feed.event",
        "kind": event["event"],
        "id": event.get("id"),
        "symbol": event.get("symbol"),
        "text": json.dumps(event, separators=(",", ":")),
    }
    await get_channel_layer().group_send(group, message)


async def _group_html(html: str) -> None:
    await get_channel_layer().group_send(GROUP_UI, {"type": "ui.html", "html": html})


async def engine_command(command: str) -> None:
    """Tell the worker (if connected) to act now on a start / stop / reload request."""
    await get_channel_layer().group_send(
        GROUP_ENGINE, {"type": "engine.command", "command": command}
    )


def reset_for_tests() -> None:
    global _state
    _state = _Broadcast()
