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
import time
from typing import Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from engine import tokens
from engine.core.outcomes import DEFAULT_HORIZONS, HorizonError, parse_horizons
from engine.services import settings_get
from signals import events
from signals.services import newest_signal_id
from signals.templatetags.outcomes import outcome_cells

logger = logging.getLogger(__name__)

GROUP_FEED = "feed"  # /ws/signals/ consumers: signal and status events (JSON)
GROUP_BARS = "bars"  # /ws/signals/ consumers that subscribed to the bar stream
GROUP_UI = "ui"  # /ws/ui/ consumers: HTML fragments for htmx
GROUP_ENGINE = "engine"  # the bridge consumer: commands down to the worker

WATCH_SECONDS = 0.5  # how often each Daphne process reads the newest id and the feed token
HORIZONS_SECONDS = 5.0  # how long this process trusts the outcome horizons it read


class _Horizons:
    """The outcome horizons setting, read at most every HORIZONS_SECONDS (a page row's cells)."""

    value: tuple[int, ...] = ()
    read_at = -HORIZONS_SECONDS

    def fresh(self) -> bool:
        return bool(self.value) and time.monotonic() - self.read_at < HORIZONS_SECONDS


_horizons = _Horizons()


def outcome_horizons() -> tuple[int, ...]:
    """The configured outcome horizons in seconds (sync: a view, a thread)."""
    if not _horizons.fresh():
        try:
            value = parse_horizons(settings_get().outcome_horizons)
        except HorizonError:  # the model validates it; a row written around it reads default
            value = parse_horizons(DEFAULT_HORIZONS)
        _horizons.value, _horizons.read_at = value, time.monotonic()
    return _horizons.value


async def outcome_horizons_async() -> tuple[int, ...]:
    if _horizons.fresh():
        return _horizons.value
    return await database_sync_to_async(outcome_horizons)()


def signal_html(
    event: events.SignalEvent | dict,
    *,
    horizons: tuple[int, ...] = (),
    outcomes: dict[str, dict] | None = None,
) -> str:
    """A signal as the HTML every page socket gets: a live row (with a cell per outcome
    horizon, filled from ``outcomes`` where final) and its tile's last signal."""
    row = {**event, "outcome_cells": outcome_cells(horizons, outcomes)}
    return render_to_string("signals/partials/signal_live.html", {"signal": row})


def outcome_html(event: dict) -> str:
    """A final outcome as the HTML page sockets get: the cell of its signal's live row."""
    label = event["horizon"]
    values = {key: event.get(key) for key in ("return_pct", "mfe_pct", "mae_pct")}
    return render_to_string(
        "signals/partials/outcome_live.html",
        {"signal_id": event["id"], "cell": {"label": label, "outcome": values}},
    )


async def publish(event: dict) -> None:
    """Fan an engine event out to every program and page socket."""
    kind = event.get("event")
    if kind == events.SIGNAL:
        # The wake-up carries the frames, so a socket that is up to date sends them as they are.
        await _feed_send(GROUP_FEED, event)
        html = signal_html(event, horizons=await outcome_horizons_async())
        await get_channel_layer().group_send(
            GROUP_UI, {"type": "ui.signal", "id": event["id"], "html": html}
        )
    elif kind == events.OUTCOME:
        await _outcome_send(event)
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


async def _outcome_send(event: dict) -> None:
    """An outcome goes to program sockets whose symbol filter takes it and to pages; each
    socket sends it once its signal has been sent (``SignalStream.on_outcome``)."""
    try:
        key = (int(event["id"]), str(event["horizon"]))
        html = outcome_html(event)
    except (KeyError, TypeError, ValueError):
        logger.warning("ignoring an outcome event without id and horizon")
        return
    layer = get_channel_layer()
    await layer.group_send(
        GROUP_FEED,
        {
            "type": "feed.event",
            "kind": events.OUTCOME,
            "id": key[0],
            "horizon": key[1],
            "symbol": event.get("symbol"),
            "text": events.text(event),
        },
    )
    await layer.group_send(
        GROUP_UI, {"type": "ui.outcome", "id": key[0], "horizon": key[1], "html": html}
    )


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
    global _watch, _horizons
    _horizons = _Horizons()
    if _watch.task is not None:
        _watch.task.cancel()
    _watch = _Watch()
