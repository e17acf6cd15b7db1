"""The default (single-process) channel layer."""

import asyncio
import contextlib
import time
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class LocalChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, made cheap for fanning one event out to many sockets.

    - The expiry sweep runs at most once a second: the stock layer scans every channel's
      queue on each send and receive, so one event to N sockets cost O(N²).
    - Queues are created only when missing (the stock layer builds a throw-away
      ``asyncio.Queue`` on every send and receive).
    - ``group_send`` gives each member a shallow copy of the message instead of a deep copy:
      the events fanned out here are flat dicts of strings and numbers.
    """

    SWEEP_EVERY = 1.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next_sweep = 0.0

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

    async def group_send(self, group, message):
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        flat = all(isinstance(v, str | int | float | bool | None) for v in message.values())
        for channel in list(self.groups.get(group, {})):
            # As with the stock layer, a full channel misses this message.
            with contextlib.suppress(ChannelFull):
                self._put(channel, dict(message) if flat else deepcopy(message))
