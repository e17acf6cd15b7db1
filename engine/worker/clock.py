"""The worker's market clock: the real time, or a test clock that runs faster.

``SCALP_TEST_CLOCK="T0,EPOCH,SPEED"`` (tests only) makes the clock read ``EPOCH`` at the real
time ``T0`` and advance ``SPEED`` times faster: a worker and the fake TWS given the same value
agree on the time, so a 6.5-hour session plays out in minutes. Unset (always, in real use):
``time.time``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ENV = "SCALP_TEST_CLOCK"


class ClockError(ValueError):
    """SCALP_TEST_CLOCK is not ``T0,EPOCH,SPEED``."""


def parse_clock(text: str) -> Callable[[], float]:
    """The clock ``T0,EPOCH,SPEED`` describes (see the module docstring)."""
    try:
        t0, epoch, speed = (float(part) for part in text.split(","))
    except ValueError:
        raise ClockError(
            f"{ENV} must be T0,EPOCH,SPEED (three numbers), not {text[:60]!r}."
        ) from None
    if not (0 < speed <= 10_000) or not (0 <= t0 < 1e10) or not (0 <= epoch < 1e10):
        raise ClockError(f"{ENV}: speed must be in (0, 10000] and the times epoch seconds.")

    def clock() -> float:
        return epoch + (time.time() - t0) * speed

    return clock


def market_clock() -> Callable[[], float]:
    """``time.time``, or the test clock of ``SCALP_TEST_CLOCK``."""
    text = os.environ.get(ENV, "").strip()
    return parse_clock(text) if text else time.time
