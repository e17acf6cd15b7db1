"""The default (single-process) channel layer."""

import time

from channels.layers import InMemoryChannelLayer


class LocalChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer with the expiry sweep done at most once a second.

    The stock layer scans every channel's queue on each send and receive, so fanning one
    signal out to N sockets costs O(N²); sweeping once a second keeps it O(N).
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
