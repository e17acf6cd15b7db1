"""The worker's side of `/ws/engine/`: events up to Daphne, Start/Stop/Reload commands down.

If Daphne is down the worker keeps running and storing signals; events are not queued while
the bridge is down: they only wake Daphne's sockets, which read the signals themselves from
SQLite by id (docs/delivery.md). The last status is re-sent on every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import websockets

from engine.worker.publish import Publisher
from signals import events

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
MAX_BACKOFF = 5.0


def bridge_url(web_url: str) -> str:
    """``http://127.0.0.1:8000`` → ``ws://127.0.0.1:8000/ws/engine/``."""
    base = web_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        base = "ws://" + base.removeprefix("http://")
    return f"{base}/ws/engine/"


class BridgePublisher(Publisher):
    def __init__(
        self, web_url: str, token: str, *, on_command: Callable[[str], None] | None = None
    ) -> None:
        self.url = bridge_url(web_url)
        self.token = token
        self.on_command = on_command
        self.queue: asyncio.Queue[events.Event] = asyncio.Queue(QUEUE_LIMIT)
        self.connected = asyncio.Event()
        self.last_status: events.Event | None = None
        self.task: asyncio.Task | None = None
        self.dropped = 0

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name="engine-bridge")

    async def publish(self, event: events.Event) -> None:
        if event["event"] == events.STATUS:
            self.last_status = event
        if not self.connected.is_set():
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1  # Daphne is not keeping up; signals are safe in SQLite

    async def close(self) -> None:
        if self.task is None:
            return
        # Give the last events (the final status) a moment to leave.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), 2.0)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with websockets.connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    ping_interval=20,
                    max_queue=64,
                ) as ws:
                    backoff = 0.2
                    await self.session(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError) as err:
                logger.debug("bridge to %s unavailable: %s", self.url, err)
            finally:
                self.connected.clear()
                self.drain()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def session(self, ws) -> None:
        logger.info("bridge connected to %s", self.url)
        await ws.send(events.text(events.hello()))
        if self.last_status is not None:
            await ws.send(events.text(self.last_status))
        self.connected.set()
        receiver = asyncio.create_task(self.receive(ws))
        try:
            while True:
                getter = asyncio.create_task(self.queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when="FIRST_COMPLETED")
                if receiver in done:
                    getter.cancel()
                    receiver.result()  # re-raise the connection error
                    return
                event = getter.result()
                try:
                    await ws.send(events.text(event))
                finally:
                    self.queue.task_done()
        finally:
            receiver.cancel()

    async def receive(self, ws) -> None:
        async for frame in ws:
            try:
                command = json.loads(frame).get("command")
            except (ValueError, AttributeError):
                continue
            if command and self.on_command is not None:
                self.on_command(command)

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
            self.queue.task_done()
