"""The one path for live pushes: engine events in, program (JSON) and page (HTML) sockets out.

The engine worker sends its events over the `/ws/engine/` bridge; the bridge consumer
(``signals.consumers.EngineBridgeConsumer``) hands each one to :func:`publish`. For signals
the channel layer is only a wake-up: every socket keeps its own position and reads what it has
not sent from SQLite, the source of truth (``signals.stream.SignalStream``; docs/delivery.md).
A per-process watch (:func:`watch`) wakes the sockets of this process that a lost wake-up left
behind, and closes program sockets whose feed token was rotated.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from engine import tokens
from signals import events
from signals.services import newest_signal_id

logger = logging.getLogger(__name__)

GROUP_FEED = "feed"  # /ws/signals/ consumers: signal and status events (JSON)
GROUP_BARS = "bars"  # /ws/signals/ consumers that subscribed to the bar stream
GROUP_UI = "ui"  # /ws/ui/ consumers: HTML fragments for htmx
GROUP_ENGINE = "engine"  # the bridge consumer: commands down to the worker

WATCH_SECONDS = 0.5  # how often each Daphne process reads the newest id and the feed token


def signal_html(event: events.SignalEvent | dict) -> str:
    """A signal as the HTML every page socket gets: a live row and its tile's last signal."""
    return render_to_string("signals/partials/signal_live.html", {"signal": event})


async def publish(event: dict) -> None:
    """Fan an engine event out to every program and page socket."""
    kind = event.get("event")
    if kind == events.SIGNAL:
        # The wake-up carries the frames, so a socket that is up to date sends them as they are.
        await _feed_send(GROUP_FEED, event)
        await get_channel_layer().group_send(
            GROUP_UI, {"type": "ui.signal", "id": event["id"], "html": signal_html(event)}
        )
    elif kind == events.STATUS:
        await _feed_send(GROUP_FEED, event)
        await _group_html(render_to_string("engine/partials/status.html", {"status": event}))
    elif kind == events.BAR:
        await _feed_send(GROUP_BARS, event)
        await _group_html(render_to_string("engine/partials/tile.html", {"bar": event}))
    else:
        logger.warning("ignoring engine event of unknown kind %r", kind)


async def bridge_connected() -> None:
    """The worker (re)connected: it sent nothing while it was away, so wake every socket
    (in every Daphne process) to read what was stored up to now."""
    newest = await database_sync_to_async(newest_signal_id)()
    layer = get_channel_layer()
    await layer.group_send(GROUP_FEED, {"type": "feed.event", "kind": "wake", "id": newest})
    await layer.group_send(GROUP_UI, {"type": "ui.wake", "id": newest})


async def _feed_send(group: str, event: dict) -> None:
    # Serialised once here, not once per client; the layer copies the message per channel,
    # so it carries only flat fields: what the consumers filter on, and the text to send.
    message = {
        "type": "feed.event",
        "kind": event["event"],
        "id": event.get("id"),
        "symbol": event.get("symbol"),
        "text": events.text(event),
    }
    await get_channel_layer().group_send(group, message)


async def _group_html(html: str) -> None:
    await get_channel_layer().group_send(GROUP_UI, {"type": "ui.html", "html": html})


async def engine_command(command: str) -> None:
    """Tell the worker (if connected) to act now on a start / stop / reload request."""
    await get_channel_layer().group_send(
        GROUP_ENGINE, {"type": "engine.command", "command": command}
    )


# --- the per-process watch ---------------------------------------------------------------


class Watched(Protocol):
    async def watch_round(self, *, missed: int, newest: int, feed_token: str) -> None:
        """``missed``: an id stored a whole round ago; ``newest``: the newest id now."""


class _Watch:
    """The sockets of this process, and the task that looks after them while there are any."""

    def __init__(self) -> None:
        self.sockets: set[Watched] = set()
        self.task: asyncio.Task | None = None


_watch = _Watch()


def _newest_and_feed_token() -> tuple[int, str]:
    return newest_signal_id(), tokens.feed_token()


def watch(socket: Watched) -> None:
    """Look after ``socket`` until :func:`unwatch`; starts this process's watch task."""
    _watch.sockets.add(socket)
    if _watch.task is None or _watch.task.done():
        _watch.task = asyncio.get_running_loop().create_task(_watch_loop(), name="delivery-watch")


def unwatch(socket: Watched) -> None:
    _watch.sockets.discard(socket)
    if not _watch.sockets and _watch.task is not None:
        _watch.task.cancel()  # nobody to look after: no queries every half second
        _watch.task = None


async def _watch_loop() -> None:
    """One query of the newest id and the feed token per round, for every socket at once.

    A socket is woken only when it is still behind the newest id of the *previous* round: the
    wake-up of a signal stored a round ago has had time to arrive, so this fires when one was
    lost (a dropped layer message, a bridge that has not reconnected to this fresh Daphne), not
    in the everyday race with a wake-up on its way.
    """
    previous = 0
    while True:
        try:
            newest, feed_token = await database_sync_to_async(_newest_and_feed_token)()
            for socket in list(_watch.sockets):
                await socket.watch_round(missed=previous, newest=newest, feed_token=feed_token)
            previous = newest
        except Exception:  # a locked database, a socket that went away mid-close: next round
            logger.exception("delivery watch: a round failed")
        await asyncio.sleep(WATCH_SECONDS)


def reset_for_tests() -> None:
    global _watch
    if _watch.task is not None:
        _watch.task.cancel()
    _watch = _Watch()
