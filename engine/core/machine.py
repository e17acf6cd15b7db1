"""Per-symbol state machine WAIT → SIGNAL → COOLDOWN, driven by closed bars in bar time."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Final, Protocol

from engine.core.bars import Bar
from engine.core.indicators import (
    SCALE,
    US_SESSION_UTC_OFFSET,
    Bollinger,
    Ema,
    Rsi,
    Sma,
    Value,
    Vwap,
)
from engine.core.rules import Condition, RuleDef, split_operand

WAIT: Final = "WAIT"
COOLDOWN: Final = "COOLDOWN"
_NO_BAR: Final = -(2**62)


class _Source(Protocol):
    num: int | float | None
    den: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A fired rule: one per (rule, symbol, bar close time)."""

    symbol: str
    close_time: int
    price: float
    rule_id: int | None
    values: dict[str, float]


Check = Callable[[], bool]


def _greater(a: _Source, b: _Source, *, or_equal: bool) -> Check:
    """``a > b`` (or ``a >= b``) without division; False while either side is undefined."""
    g = gcd(a.den, b.den)
    ad, bd = a.den // g, b.den // g
    # A Value with a number at compile time is a constant: fold it into ``limit``.
    a_fixed = a.num if isinstance(a, Value) else None
    b_fixed = b.num if isinstance(b, Value) else None
    if b_fixed is not None:
        limit = b_fixed * ad
        if or_equal:

            def check() -> bool:
                x = a.num
                return x is not None and x * bd >= limit

        else:

            def check() -> bool:
                x = a.num
                return x is not None and x * bd > limit

        return check
    if a_fixed is not None:
        limit = a_fixed * bd
        if or_equal:

            def check() -> bool:
                y = b.num
                return y is not None and limit >= y * ad

        else:

            def check() -> bool:
                y = b.num
                return y is not None and limit > y * ad

        return check
    if or_equal:

        def check() -> bool:
            x = a.num
            y = b.num
            return x is not None and y is not None and x * bd >= y * ad

    else:

        def check() -> bool:
            x = a.num
            y = b.num
            return x is not None and y is not None and x * bd > y * ad

    return check


def _crossing(a: _Source, b: _Source) -> Check:
    """``a`` crosses above ``b``: previous bar ``a <= b``, this bar ``a > b``, both defined."""
    above = _greater(a, b, or_equal=False)
    prev: bool | None = None  # None: previous bar undefined (or no previous bar)

    def check() -> bool:
        nonlocal prev
        if a.num is None or b.num is None:
            prev = None
            return False
        was = prev
        prev = now = above()
        return was is False and now

    return check


class SymbolMachine:
    """One rule on one symbol: indicators, cross/edge memory, cooldown, de-duplication.

    Feed closed bars in time order: :meth:`warm` for history (never emits), :meth:`on_bar`
    for live or replayed bars. A bar whose close time is not after the last processed one is
    ignored (re-delivery after a reconnect), so a signal is unique per bar close time.
    """

    __slots__ = (
        "rule",
        "symbol",
        "rule_id",
        "state",
        "cooldown_until",
        "_last_close",
        "_price",
        "_open",
        "_high",
        "_low",
        "_volume",
        "_close_updates",
        "_vwaps",
        "_extra_inputs",
        "_sources",
        "_display",
        "_evaluate",
        "_edge",
        "_prev_truth",
        "_cooldown",
    )

    def __init__(
        self,
        rule: RuleDef,
        symbol: str,
        *,
        rule_id: int | None = None,
        vwap_session: Callable[[int], Hashable] | None = None,
        vwap_utc_offset: int = US_SESSION_UTC_OFFSET,
    ) -> None:
        self.rule = rule
        self.symbol = symbol
        self.rule_id = rule_id if rule_id is not None else rule.rule_id
        self.state: str = WAIT
        self.cooldown_until: int | None = None
        self._last_close = _NO_BAR
        self._edge = rule.trigger == "edge"
        self._prev_truth: bool | None = None
        self._cooldown = rule.cooldown_sec
        self._price = Value(SCALE)
        self._open: Value | None = None
        self._high: Value | None = None
        self._low: Value | None = None
        self._volume: Value | None = None
        self._vwaps: list[Vwap] = []
        close_updates: list[Callable[[int], None]] = []
        sources: dict[str, _Source] = {"PRICE": self._price}
        bands: dict[int, Bollinger] = {}
        for name in sorted(rule.operands()):
            kind, n = split_operand(name)
            if kind == "PRICE":
                continue
            if kind == "OPEN":
                self._open = sources[name] = Value(SCALE)
            elif kind == "HIGH":
                self._high = sources[name] = Value(SCALE)
            elif kind == "LOW":
                self._low = sources[name] = Value(SCALE)
            elif kind == "VOLUME":
                self._volume = sources[name] = Value(1)
            elif kind == "VWAP":
                vwap = Vwap(SCALE, session_key=vwap_session, utc_offset=vwap_utc_offset)
                self._vwaps.append(vwap)
                sources[name] = vwap
            else:
                assert n is not None
                if kind == "MA":
                    ind: Sma | Ema | Rsi = Sma(n, SCALE)
                elif kind == "EMA":
                    ind = Ema(n, SCALE)
                elif kind == "RSI":
                    ind = Rsi(n)
                else:
                    band = bands.get(n)
                    if band is None:
                        band = bands[n] = Bollinger(n, SCALE)
                        close_updates.append(band.update)
                    sources[name] = band.upper if kind == "BBUPPER" else band.lower
                    continue
                close_updates.append(ind.update)
                sources[name] = ind
        self._close_updates = tuple(close_updates)
        self._extra_inputs = any(
            x is not None for x in (self._open, self._high, self._low, self._volume)
        ) or bool(self._vwaps)
        self._sources = sources
        self._display = tuple((name, sources[name]) for name in sorted(sources, key=_display_order))
        self._evaluate = self._compile(rule.conditions, rule.logic)

    def _source(self, operand: str | int | float) -> _Source:
        if isinstance(operand, str):
            return self._sources[operand]
        # Decimal value of the literal as written, so PRICE > 100.1 is exact too.
        frac = Fraction(repr(operand)) if isinstance(operand, float) else Fraction(operand)
        return Value(frac.denominator, frac.numerator)

    def _compile_condition(self, cond: Condition) -> tuple[Check, bool]:
        a, b = self._source(cond.left), self._source(cond.right)
        op = cond.op
        if op == ">":
            return _greater(a, b, or_equal=False), False
        if op == ">=":
            return _greater(a, b, or_equal=True), False
        if op == "<":
            return _greater(b, a, or_equal=False), False
        if op == "<=":
            return _greater(b, a, or_equal=True), False
        if op == "crosses_above":
            return _crossing(a, b), True
        return _crossing(b, a), True  # a crosses below b == b crosses above a

    def _compile(self, conditions: tuple[Condition, ...], logic: str) -> Check:
        compiled = [self._compile_condition(c) for c in conditions]
        # Cross conditions run on every bar to keep their memory; the rest may short-circuit.
        crosses = tuple(check for check, is_cross in compiled if is_cross)
        plain = tuple(check for check, is_cross in compiled if not is_cross)
        if logic == "AND":
            if not crosses and len(plain) == 1:
                return plain[0]
            if not crosses and len(plain) == 2:
                first, second = plain

                def both() -> bool:
                    return first() and second()

                return both

            def all_true() -> bool:
                result = True
                for check in crosses:
                    if not check():
                        result = False
                if result:
                    for check in plain:
                        if not check():
                            return False
                return result

            return all_true

        def any_true() -> bool:
            result = False
            for check in crosses:
                if check():
                    result = True
            if not result:
                for check in plain:
                    if check():
                        return True
            return result

        return any_true

    def _step(
        self, time: int, seconds: int, open: float, high: float, low: float, close: float,
        volume: float,
    ) -> bool | None:  # fmt: skip
        """Update indicators and memory with one bar; whether it fires (before cooldown), or
        None if the bar was already seen."""
        close_time = time + seconds
        if close_time <= self._last_close:
            return None
        self._last_close = close_time
        p = round(close * SCALE)
        self._price.num = p
        for update in self._close_updates:
            update(p)
        if self._extra_inputs:
            self._update_extra_inputs(time, open, high, low, volume, p)
        truth = bool(self._evaluate())
        if self._edge:
            fire = truth and self._prev_truth is False
            self._prev_truth = truth
            return fire
        return truth

    def _update_extra_inputs(
        self, time: int, open: float, high: float, low: float, volume: float, p: int
    ) -> None:
        if self._open is not None:
            self._open.num = round(open * SCALE)
        if self._high is not None:
            self._high.num = round(high * SCALE)
        if self._low is not None:
            self._low.num = round(low * SCALE)
        if self._volume is not None:
            self._volume.num = volume
        for vwap in self._vwaps:
            vwap.update(time, round(high * SCALE), round(low * SCALE), p, volume)

    def warm(self, bar: Bar) -> None:
        """Feed a history bar: indicators and cross/edge memory only, never a signal."""
        self._step(bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def on_bar(self, bar: Bar) -> Signal | None:
        """Feed a closed bar; returns the signal it fires, if any (None for a bar already
        seen, during cooldown, or when the rule does not fire)."""
        return self.on_values(
            bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume
        )

    def on_values(
        self,
        time: int,
        seconds: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> Signal | None:
        """:meth:`on_bar` for a bar given as plain values (bulk replay skips building Bars)."""
        fire = self._step(time, seconds, open, high, low, close, volume)
        if fire is None:
            return None
        close_time = time + seconds
        until = self.cooldown_until
        if until is not None:
            if close_time < until:
                return None
            self.cooldown_until = None
            self.state = WAIT
        if not fire:
            return None
        self.cooldown_until = close_time + self._cooldown
        self.state = COOLDOWN
        # The price as the core holds it, whole millionths: 238.73, never 238.73000000000002.
        price = self._price.num / SCALE  # type: ignore[operator]  # _step set it: an int
        return Signal(self.symbol, close_time, price, self.rule_id, self._signal_values())

    @property
    def last_close_time(self) -> int | None:
        """Close time of the last bar processed (warm or live); None before any bar."""
        return None if self._last_close == _NO_BAR else self._last_close

    def last_values(self) -> dict[str, float | None]:
        """Current operand values in price units (None while undefined), for display."""
        return {name: None if src.num is None else src.num / src.den for name, src in self._display}

    def _signal_values(self) -> dict[str, float]:
        return {name: src.num / src.den for name, src in self._display if src.num is not None}


def _display_order(name: str) -> tuple[int, str, int]:
    kind, n = split_operand(name)
    order = ("PRICE", "OPEN", "HIGH", "LOW", "VOLUME", "VWAP", "MA", "EMA", "BBUPPER", "BBLOWER")
    rank = order.index(kind) if kind in order else len(order)
    return rank, kind, n or 0
