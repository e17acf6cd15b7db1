"""The default (single-process) channel layer."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

logger = logging.getLogger(__name__)

YIELD_EVERY = 4  # direct deliveries between two turns of the event loop


class LocalChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, made cheap for fanning one event out to many sockets.

    - The expiry sweep runs at most once a second: the stock layer scans every channel's
      queue on each send and receive, so one event to N sockets cost O(N²).
    - Queues are created only when missing (the stock layer builds a throw-away
      ``asyncio.Queue`` on every send and receive).
    - ``group_send`` gives each member a shallow copy of the message instead of a deep copy:
      the events fanned out here are flat dicts of strings and numbers.
    - A consumer in this process may ``attach`` a delivery function to its channel: its group
      messages are then handed to that function directly (in group order, once per member)
      instead of going through a queue, a task wake-up and Channels' dispatch loop per
      message. That is what makes fanning a signal out to hundreds of sockets cheap. The
      function gets the message itself (it must not change it) and must not raise; an error
      is logged and the other members still get the message. Layers without ``attach``
      (``channels_redis``) deliver through the queue as usual: consumers support both.
    """

    SWEEP_EVERY = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next_sweep = 0.0
        self.direct: dict[str, Callable[[dict], Awaitable[None]]] = {}
        self._fanout: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    def attach(self, channel: str, deliver: Callable[[dict], Awaitable[None]]) -> None:
        self.require_valid_channel_name(channel)
        self.direct[channel] = deliver

    def detach(self, channel: str) -> None:
        self.direct.pop(channel, None)

    def _clean_expired(self):
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_EVERY
            super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    async def send(self, channel, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, deepcopy(message))

    def _put(self, channel: str, message: dict) -> None:
        try:
            self._queue(channel).put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel):
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message

    def _fanout_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()  # tests run one loop each; Daphne runs one for good
        if self._fanout is None or self._fanout[0] is not loop:
            self._fanout = (loop, asyncio.Lock())
        return self._fanout[1]

    async def group_send(self, group, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        flat = all(isinstance(v, str | int | float | bool | None) for v in message.values())
        async with self._fanout_lock():  # one group message at a time: one order for all
            delivered = 0
            for channel in list(self.groups.get(group, {})):
                deliver = self.direct.get(channel)
                if deliver is None:
                    # As with the stock layer, a full channel misses this message.
                    with contextlib.suppress(ChannelFull):
                        self._put(channel, dict(message) if flat else deepcopy(message))
                    continue
                try:
                    await deliver(message)
                except Exception:
                    logger.exception("delivering %s to %s failed", message.get("type"), channel)
                delivered += 1
                if delivered % YIELD_EVERY == 0:
                    # Let the server write what is already queued: frames leave as the fan-out
                    # goes on, not only after the last socket has been served.
                    await asyncio.sleep(0)
