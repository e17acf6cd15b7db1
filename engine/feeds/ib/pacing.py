"""IB's pacing rules for historical-data requests, and the warm-up's share of them.

IB answers a historical-data request with a pacing violation (error 162) when, among the
requests of a session, there was (TWS API docs, "Historical Data Limitations"):

- an identical request within the last 15 seconds,
- six or more requests for the same contract within two seconds,
- more than 60 requests within any ten minutes.

:class:`HistoryPacer` says how long to wait before a request so that none of these happens;
the feed keeps one for all its connections. A run's warm-up uses at most
:data:`WARMUP_REQUESTS` of the 60 (:func:`warmup_budget` shares them among the symbols): the
rest stays free for the backfills after reconnects.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

IDENTICAL_WITHIN = 15.0
SAME_CONTRACT_MAX = 5  # requests in SAME_CONTRACT_WITHIN seconds; a sixth is a violation
SAME_CONTRACT_WITHIN = 2.0
WINDOW_MAX = 60  # requests in WINDOW seconds
WINDOW = 600.0
# Added to every wait: TWS sees a request a little after we send it, and not always with the
# same delay. On a busy machine a tenth of a second was not enough (the sixth request for a
# contract reached a gateway 1.97 s after the first), nor a quarter (1.92 s); half a second
# costs a warm-up of 5 symbols about 2 s.
MARGIN = 0.5

WARMUP_REQUESTS = 45
# After IB refuses a request with a pacing violation (its rules are counted on its side, with
# other programs' requests too): every request waits this long, then the same one is asked
# again (it is identical to the refused one: IB's 15-second rule applies anyway); up to
# PACING_RETRIES times, the wait doubling after the second.
PACING_WAIT = IDENTICAL_WITHIN
PACING_RETRIES = 4


def warmup_budget(symbols: int, *, used: int = 0) -> int:
    """History requests one symbol's warm-up may make when ``symbols`` warm up together and
    ``used`` requests went out in the last ten minutes (an earlier connection's warm-up):
    at least one."""
    return max(1, (WARMUP_REQUESTS - used) // max(1, symbols))


class HistoryPacer:
    """The historical-data requests sent in the last ten minutes, and the wait before the
    next one. ``key`` is everything that makes two requests identical; ``contract`` is the
    contract's IB id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sent: deque[tuple[float, int, Hashable]] = deque()  # (sent at, contract, key)
        self._hold_until = 0.0  # after a pacing violation: no request before this

    def _forget_old(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - WINDOW - MARGIN:
            self._sent.popleft()

    def delay(self, key: Hashable, contract: int) -> float:
        """Seconds to wait before sending this request (0 when it may go now)."""
        now = self.clock()
        self._forget_old(now)
        until = max(now, self._hold_until)
        same: list[float] = []
        for sent_at, sent_contract, sent_key in self._sent:
            if sent_key == key:
                until = max(until, sent_at + IDENTICAL_WITHIN + MARGIN)
            if sent_contract == contract and sent_at > now - SAME_CONTRACT_WITHIN - MARGIN:
                same.append(sent_at)
        if len(same) >= SAME_CONTRACT_MAX:
            until = max(until, same[-SAME_CONTRACT_MAX] + SAME_CONTRACT_WITHIN + MARGIN)
        if len(self._sent) >= WINDOW_MAX:
            until = max(until, self._sent[-WINDOW_MAX][0] + WINDOW + MARGIN)
        return until - now

    def hold(self, seconds: float) -> None:
        """IB refused a request for pacing: send nothing for ``seconds``."""
        self._hold_until = max(self._hold_until, self.clock() + seconds)

    def record(self, key: Hashable, contract: int) -> None:
        """Note a request sent now."""
        self._sent.append((self.clock(), contract, key))

    def recent(self) -> int:
        """Requests sent in the last ten minutes."""
        self._forget_old(self.clock())
        return len(self._sent)
