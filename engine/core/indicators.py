"""Incremental indicators: O(1) work per bar, fixed memory, exact where DESIGN §2 asks for it.

Every indicator exposes its current value as a fraction ``num / den``: ``den`` is a constant
int fixed at construction, ``num`` is ``None`` while the indicator is undefined, an ``int``
when the value is exact (SMA of integer-scaled prices, a flat Bollinger band) and a ``float``
otherwise. Comparing ``a.num * b.den > b.num * a.den`` is then exact whenever both sides are
exact, with no division. ``value`` gives the plain float for display.

Prices enter as integers (``price_to_int``: the price times ``SCALE``, rounded), so sums never
drift and a flat market gives ``MA == PRICE`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Final

SCALE: Final = 1_000_000
"""Prices are handled as integers in millionths (6 decimals covers stocks and sub-pennies)."""

US_SESSION_UTC_OFFSET: Final = -5 * 3600
"""Default VWAP day boundary: midnight at UTC-5. Any offset from UTC-4 to UTC-8 puts the
boundary in the overnight gap of US equities (20:00-04:00 New York), so DST does not matter."""


def price_to_int(price: float) -> int:
    """A price as an integer number of millionths."""
    return round(price * SCALE)


class Value:
    """A plain operand value (PRICE, OPEN, VOLUME, a constant ...) set from outside."""

    __slots__ = ("num", "den")

    def __init__(self, den: int = 1, num: int | float | None = None) -> None:
        self.num = num
        self.den = den

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den


class Sma:
    """Simple moving average of the last ``n`` inputs (current one included).

    Integer inputs give an exact ``num`` (the running sum); ``den = n * scale``.
    """

    __slots__ = ("n", "den", "num", "_buf", "_i", "_sum", "_count")

    def __init__(self, n: int, scale: int = 1) -> None:
        self.n = n
        self.den = n * scale
        self.num: int | float | None = None
        self._buf: list[int | float] = [0] * n
        self._i = 0
        self._sum: int | float = 0
        self._count = 0

    def update(self, x: int | float) -> None:
        i = self._i
        buf = self._buf
        s = self._sum + x - buf[i]
        buf[i] = x
        self._sum = s
        i += 1
        if i == self.n:
            i = 0
        self._i = i
        if self.num is not None:
            self.num = s
        else:
            self._count += 1
            if self._count == self.n:
                self.num = s

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den


class Ema:
    """Exponential moving average, seeded with the SMA of the first ``n`` inputs (TA-Lib),
    then ``ema += 2 / (n + 1) * (x - ema)``. ``den = scale``."""

    __slots__ = ("n", "den", "num", "_k", "_sum", "_count")

    def __init__(self, n: int, scale: int = 1) -> None:
        self.n = n
        self.den = scale
        self.num: float | None = None
        self._k = 2.0 / (n + 1)
        self._sum: int | float = 0
        self._count = 0

    def update(self, x: int | float) -> None:
        ema = self.num
        if ema is not None:
            self.num = ema + self._k * (x - ema)
            return
        self._sum += x
        self._count += 1
        if self._count == self.n:
            # Division of the exact integer sum keeps a flat market exactly at the price.
            self.num = self._sum / self.n

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den


class Rsi:
    """Relative strength index with Wilder smoothing, TA-Lib conventions.

    Defined after ``n`` changes (``n + 1`` inputs): the first averages are the plain means of
    the first ``n`` gains and losses, then ``avg = (avg * (n - 1) + x) / n``. RSI is
    ``100 * gain / (gain + loss)``, and 0 when both are zero (TA-Lib; talipp and TradingView
    say 100 for that flat case). ``den = 1``.
    """

    __slots__ = ("n", "den", "num", "_prev", "_gain", "_loss", "_count")

    def __init__(self, n: int) -> None:
        self.n = n
        self.den = 1
        self.num: float | None = None
        self._prev: int | float | None = None
        self._gain: int | float = 0
        self._loss: int | float = 0
        self._count = 0

    def update(self, x: int | float) -> None:
        prev = self._prev
        self._prev = x
        if prev is None:
            return
        change = x - prev
        gain = change if change > 0 else 0
        loss = -change if change < 0 else 0
        n = self.n
        if self.num is not None:
            g = (self._gain * (n - 1) + gain) / n
            lo = (self._loss * (n - 1) + loss) / n
        else:
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < n:
                return
            g = self._gain / n
            lo = self._loss / n
        self._gain = g
        self._loss = lo
        total = g + lo
        self.num = 100.0 * g / total if total else 0.0

    @property
    def value(self) -> float | None:
        return self.num


class Bollinger:
    """Bollinger bands: SMA ± ``k`` population standard deviations of the last ``n`` inputs.

    ``upper`` and ``lower`` are :class:`Value` objects (``den = n * scale``). Running integer
    sums of x and x² make the variance exact, so a flat market gives bands equal to the SMA.
    """

    __slots__ = ("n", "k", "upper", "lower", "_buf", "_i", "_sum", "_sumsq", "_count")

    def __init__(self, n: int, scale: int = 1, k: int = 2) -> None:
        self.n = n
        self.k = k
        self.upper = Value(n * scale)
        self.lower = Value(n * scale)
        self._buf: list[int | float] = [0] * n
        self._i = 0
        self._sum: int | float = 0
        self._sumsq: int | float = 0
        self._count = 0

    def update(self, x: int | float) -> None:
        i = self._i
        buf = self._buf
        old = buf[i]
        buf[i] = x
        s = self._sum + x - old
        sq = self._sumsq + x * x - old * old
        self._sum = s
        self._sumsq = sq
        n = self.n
        self._i = 0 if i + 1 == n else i + 1
        if self._count < n:
            self._count += 1
            if self._count < n:
                return
        spread = n * sq - s * s
        if spread > 0:
            # sd = sqrt(spread) / n, so band = (s ± k * sqrt(spread)) / n
            width = self.k * math.sqrt(spread)
            self.upper.num = s + width
            self.lower.num = s - width
        else:
            self.upper.num = s
            self.lower.num = s


class Vwap:
    """Session VWAP of the typical price ``(high + low + close) / 3``, volume-weighted.

    Resets when ``session_key(bar_start)`` changes; the default key is the calendar day at
    ``utc_offset`` (see :data:`US_SESSION_UTC_OFFSET`). Undefined until the session has
    volume. Integer-scaled prices and whole volumes keep a flat session exactly at the price.
    ``den = scale``.
    """

    __slots__ = ("den", "num", "_key_fn", "_offset", "_key", "_pv", "_vol")

    def __init__(
        self,
        scale: int = 1,
        *,
        session_key: Callable[[int], Hashable] | None = None,
        utc_offset: int = US_SESSION_UTC_OFFSET,
    ) -> None:
        self.den = scale
        self.num: float | None = None
        self._key_fn = session_key
        self._offset = utc_offset
        self._key: Hashable = None
        self._pv: int | float = 0
        self._vol: int | float = 0

    def update(
        self, time: int, high: int | float, low: int | float, close: int | float, volume: float
    ) -> None:
        key = self._key_fn(time) if self._key_fn is not None else (time + self._offset) // 86400
        if key != self._key:
            self._key = key
            self._pv = 0
            self._vol = 0
            self.num = None
        whole = int(volume)
        vol: int | float = whole if whole == volume else volume
        self._pv += (high + low + close) * vol
        self._vol += vol
        if self._vol > 0:
            self.num = self._pv / (3 * self._vol)

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den
