"""Incremental indicators: O(1) work per bar, fixed memory, exact where DESIGN §2 asks for it.

Every indicator exposes its current value as a fraction ``num / den``: ``den`` is a constant
int fixed at construction, ``num`` is ``None`` while the indicator is undefined, an ``int``
when the value is exact (SMA of integer-scaled prices, a flat Bollinger band) and a ``float``
otherwise. Comparing ``a.num * b.den > b.num * a.den`` is then exact whenever both sides are
exact, with no division. ``value`` gives the plain float for display.

Prices enter as integers in units of 1e-8 (:func:`price_to_int`: the exact 8-decimal value a
float denotes, never rounded to a coarser grid), so sums never drift and a flat market gives
``MA == PRICE`` exactly. :func:`format_price` and :func:`price_decimals` render prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Final

PRICE_DECIMALS: Final = 8
"""The finest price the core keeps exactly: 8 decimals (IB's smallest tick is 1e-8)."""
SCALE: Final = 10**PRICE_DECIMALS
"""Prices are handled as integers in units of 1e-8 (``SCALE`` units make 1)."""
FINEST_TEXT: Final = "0.00000001"

US_SESSION_UTC_OFFSET: Final = -5 * 3600
"""Default VWAP day boundary: midnight at UTC-5. Any offset from UTC-4 to UTC-8 puts the
boundary in the overnight gap of US equities (20:00-04:00 New York), so DST does not matter."""

# Below this magnitude (2**26) a float's rounding interval is narrower than 1e-8, so at most
# one 8-decimal number rounds to it: ``round(x * SCALE) / SCALE == x`` then proves that
# number is the one the float's shortest text (repr) denotes. Above it, repr decides.
FAST_LIMIT: Final = float(2**26)
SCALE_FLOAT: Final = float(SCALE)
"""``SCALE`` as a float: ``x * SCALE_FLOAT`` and ``units / SCALE_FLOAT`` give the same
correctly rounded results as with the int (``units`` < 2**53 converts exactly), faster."""
# How far (relative) a float may sit from an 8-decimal number and still be read as it: a few
# units in the last place, the noise of a float written in full (190.07 + 0.02 is written
# 190.07000000000002 by Python and pandas), never a digit a person typed.
FLOAT_NOISE: Final = 1e-15


class PriceError(ValueError):
    """A price the core can't keep exactly (digits below 1e-8, not a finite number);
    ``str()`` is one sentence naming it."""


def price_units(price: float) -> int | None:
    """``price`` as a whole number of 1e-8 units: the exact value of its shortest text
    (``repr``), float noise read as the 8-decimal number it stands for
    (190.07000000000002 → 19_007_000_000). None when it has digits below 1e-8
    (1.000000001) or is not finite."""
    try:
        units = round(price * SCALE_FLOAT)
    except (ValueError, OverflowError):  # NaN, infinity
        return None
    if -FAST_LIMIT < price < FAST_LIMIT and units / SCALE_FLOAT == price:
        return units
    exact = Decimal(repr(price))
    exponent = exact.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: round() above would have failed
    if exponent >= -PRICE_DECIMALS:
        return int(exact.scaleb(PRICE_DECIMALS))
    units = int(exact.scaleb(PRICE_DECIMALS).to_integral_value())
    if abs(price - units / SCALE) <= abs(price) * FLOAT_NOISE:
        return units
    return None


def price_problem(price: float) -> str | None:
    """Why the core can't take ``price`` exactly (a sentence fragment naming it), or None."""
    if not math.isfinite(price):
        return f"price {price!r} is not a finite number"
    if price_units(price) is None:
        return (
            f"price {price!r} is finer than {FINEST_TEXT}; prices finer than "
            f"{FINEST_TEXT} (8 decimals) are not supported"
        )
    return None


def price_to_int(price: float) -> int:
    """``price`` as a whole number of 1e-8 units (see :func:`price_units`); raises
    :class:`PriceError` with a sentence for a price with digits below 1e-8 (never rounds)."""
    units = price_units(price)
    if units is None:
        raise PriceError(price_problem(price) or f"price {price!r} is not supported")
    return units


def price_from_int(units: int) -> float:
    """The float of a price in 1e-8 units: prints as its decimal (238.73, never
    238.73000000000002), exactly for prices below 2**26 (67 million)."""
    return units / SCALE


def price_decimals(min_tick: float) -> int:
    """Decimals of an instrument's minimum tick, i.e. its price precision: 0.25 → 2,
    0.00005 → 5, 0.01 → 2, 1e-08 → 8, 1 → 0 (float noise read as the tick it stands for).

    Raises ValueError for a tick that is not a positive finite number."""
    if not (math.isfinite(min_tick) and min_tick > 0):
        raise ValueError(f"min tick {min_tick!r} must be a positive number")
    units = price_units(min_tick)
    exact = Decimal(units) / SCALE if units is not None else Decimal(repr(min_tick))
    exponent = exact.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def format_price(value: float | int, decimals: int | None = None) -> str:
    """``value`` as plain decimal text with no float noise and no exponent.

    ``decimals`` None: the float's shortest text (238.73, 1.08005, 0.00001234, 6000.25; float
    noise read as the 8-decimal price it stands for). ``decimals`` N (an instrument's
    precision, see :func:`price_decimals`): at least N decimals, padded with zeros
    (format_price(6000.5, 2) == "6000.50"); digits the value really has are never cut, so a
    half-tick midpoint shows in full. Not a finite number: its repr ("nan", "inf").
    """
    if not math.isfinite(value):
        return repr(value)
    units = price_units(value) if isinstance(value, float) else None
    exact = Decimal(units).scaleb(-PRICE_DECIMALS) if units is not None else Decimal(repr(value))
    if exact == 0:
        exact = Decimal(0)
    exact = exact.normalize()
    exponent = exact.as_tuple().exponent
    assert isinstance(exponent, int)
    places = max(0, -exponent)
    if decimals is not None and decimals > places:
        places = decimals
    return f"{exact:.{places}f}"


Exact = tuple[int, int, int, int]
"""An exact operand value ``(p, c, d, den)`` standing for ``(p + c * sqrt(d)) / den`` (ints,
``d >= 0``, ``den > 0``): a Bollinger band is ``(sum ± k * sqrt(n * sumsq - sum**2)) /
(n * scale)``, a VWAP ``sum(typical * volume) / (3 * volume * scale)``."""


def exact_sign(a: Exact, b: Exact) -> int:
    """The sign of ``a - b`` (-1, 0 or 1), exactly: integer arithmetic only."""
    p1, c1, d1, den1 = a
    p2, c2, d2, den2 = b
    # a - b = (x + y * sqrt(d1) + z * sqrt(d2)) / (den1 * den2), denominators positive.
    x = p1 * den2 - p2 * den1
    y = c1 * den2
    z = -c2 * den1
    first = _sign_sqrt(x, y, d1)
    if z == 0 or d2 == 0:
        return first
    zs = 1 if z > 0 else -1
    if first == 0 or first == zs:
        return zs
    # Opposite signs: compare (x + y sqrt(d1))**2 with z**2 d2.
    second = _sign_sqrt(x * x + y * y * d1 - z * z * d2, 2 * x * y, d1)
    return first if second > 0 else (zs if second < 0 else 0)


def _sign_sqrt(x: int, y: int, d: int) -> int:
    """The sign of ``x + y * sqrt(d)`` for ints, ``d >= 0``."""
    xs = (x > 0) - (x < 0)
    if y == 0 or d == 0:
        return xs
    ys = 1 if y > 0 else -1
    if xs == 0 or xs == ys:
        return ys
    diff = x * x - y * y * d
    return xs if diff > 0 else (ys if diff < 0 else 0)


class Value:
    """A plain operand value (PRICE, OPEN, VOLUME, a constant ...) set from outside."""

    __slots__ = ("num", "den")

    def __init__(self, den: int = 1, num: int | float | None = None) -> None:
        self.num = num
        self.den = den

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den


class Band(Value):
    """A Bollinger band: ``num`` is its float value (display, comparisons with float
    operands); :meth:`exact` the exact one, for exact comparisons."""

    __slots__ = ("_bands", "_sign")

    def __init__(self, den: int, bands: Bollinger, sign: int) -> None:
        super().__init__(den)
        self._bands = bands
        self._sign = sign

    def exact(self) -> Exact | None:
        """``(sum ± k * sqrt(spread)) / den`` as :data:`Exact`, None while the inputs are
        floats (or the band is undefined)."""
        bands = self._bands
        s, spread = bands._sum, bands.spread
        if type(s) is not int or type(spread) is not int:
            return None
        return s, self._sign * bands.k, spread, self.den


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

    ``upper`` and ``lower`` are :class:`Band` objects (``den = n * scale``). Running integer
    sums of x and x² make the variance exact, so a flat market gives bands equal to the SMA,
    and each band's :meth:`Band.exact` value ``(sum ± k * sqrt(spread)) / (n * scale)`` (with
    ``spread = n * sumsq - sum**2``) lets comparisons be exact; ``num`` is the float.
    """

    __slots__ = ("n", "k", "upper", "lower", "spread", "_buf", "_i", "_sum", "_sumsq", "_count")

    def __init__(self, n: int, scale: int = 1, k: int = 2) -> None:
        self.n = n
        self.k = k
        self.spread: int | float | None = None
        self.upper = Band(n * scale, self, 1)
        self.lower = Band(n * scale, self, -1)
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
        self.spread = spread
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
    volume. Integer-scaled prices and exact volumes keep a flat session exactly at the price
    and make :meth:`exact` the exact value ``sum(typical * volume) / (3 * volume * scale)``
    for exact comparisons (``num`` is the float). Volumes are whole numbers until a fractional
    one arrives (crypto: 0.0153 BTC); from then on the session counts volume in 1e-8 units
    (the exact value of its shortest text, like prices), which leaves the ratio unchanged. A
    volume with digits below 1e-8 makes the session's sums floats (``exact`` None).
    ``den = scale``.
    """

    __slots__ = ("den", "num", "_key_fn", "_offset", "_key", "_pv", "_vol", "_vscale")

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
        self._vscale = 1  # volume units per share/contract/coin: 1, or SCALE once fractional

    def update(
        self, time: int, high: int | float, low: int | float, close: int | float, volume: float
    ) -> None:
        key = self._key_fn(time) if self._key_fn is not None else (time + self._offset) // 86400
        if key != self._key:
            self._key = key
            self._pv = 0
            self._vol = 0
            self._vscale = 1
            self.num = None
        whole = int(volume)
        vol: int | float = (
            whole if whole == volume and self._vscale == 1 else self._volume_units(volume)
        )
        self._pv += (high + low + close) * vol
        self._vol += vol
        if self._vol > 0:
            self.num = self._pv / (3 * self._vol)

    @property
    def value(self) -> float | None:
        return None if self.num is None else self.num / self.den

    def _volume_units(self, volume: float) -> int | float:
        """A volume in 1e-8 units, moving the session's sums to those units the first time;
        the float itself when it has digits below 1e-8 (the sums are inexact from then)."""
        units = price_units(volume)
        if units is None:
            return volume
        if self._vscale == 1:
            self._pv *= SCALE
            self._vol *= SCALE
            self._vscale = SCALE
        return units

    def exact(self) -> Exact | None:
        """The VWAP as :data:`Exact`; None while undefined or after a volume with digits
        below 1e-8."""
        pv, vol = self._pv, self._vol
        if type(pv) is not int or type(vol) is not int or vol <= 0:
            return None
        return pv, 0, 0, 3 * vol * self.den
