"""Per-symbol state machine WAIT → SIGNAL → COOLDOWN, driven by closed bars in bar time."""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Final, Protocol

from engine.core.bars import Bar
from engine.core.indicators import (
    FAST_LIMIT,
    SCALE,
    SCALE_FLOAT,
    US_SESSION_UTC_OFFSET,
    Band,
    Bollinger,
    Ema,
    Exact,
    PriceError,
    Rsi,
    Sma,
    Value,
    Vwap,
    exact_sign,
    price_to_int,
)
from engine.core.rules import (
    TIMEFRAME_NAMES,
    Condition,
    RuleDef,
    split_operand,
    split_timeframe,
)

WAIT: Final = "WAIT"
COOLDOWN: Final = "COOLDOWN"
_NO_BAR: Final = -(2**62)


class _Source(Protocol):
    num: int | float | None
    den: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A fired rule: one per (rule, symbol, bar close time).

    ``price`` is the bar's close as the core compared it (its exact 8-decimal value, as a
    float that prints with no float noise: 238.73, 1.08005, 0.00001234); ``values`` are the
    rule's operands (see :data:`SHOWN_DECIMALS`)."""

    symbol: str
    close_time: int
    price: float
    rule_id: int | None
    values: dict[str, float]
    side: str | None = None


Check = Callable[[], bool]

SHOWN_DECIMALS: Final = 10
"""How operand values show in ``Signal.values`` and :meth:`SymbolMachine.last_values`: an
exact one (PRICE, OPEN/HIGH/LOW, an SMA, a flat band: ``num`` an int) is the float nearest to
its exact value, so 8-decimal prices print as written (1.08005, never 1.0800500000000002);
one the core computes in floats (EMA, RSI, VWAP, a band) is rounded to 10 decimals, two below
the finest price, so its float noise never shows (189.13, never 189.13000000000002).
Comparisons never see this rounding."""


def shown_value(num: int | float, den: int) -> float:
    """An operand value ``num / den`` as shown in events (see :data:`SHOWN_DECIMALS`)."""
    value = num / den
    return value if type(num) is int else round(value, SHOWN_DECIMALS)


def _exact_form(source: _Source) -> Callable[[], Exact | None]:
    """How to read ``source``'s exact value as :data:`Exact` (None when it is a float)."""
    if isinstance(source, Band | Vwap):
        return source.exact

    def exact() -> Exact | None:
        num = source.num
        return (num, 0, 0, source.den) if type(num) is int else None

    return exact


def _greater_exact(a: _Source, b: _Source, *, or_equal: bool) -> Check:
    """``a > b`` (or ``a >= b``) where a side is a Bollinger band or a VWAP, whose exact
    value is not ``num / den``: compared exactly (:func:`exact_sign`) when both sides are
    exact, as floats otherwise (EMA, RSI, a fractional volume)."""
    exact_a, exact_b = _exact_form(a), _exact_form(b)
    least = 0 if or_equal else 1

    def check() -> bool:
        x = a.num
        y = b.num
        if x is None or y is None:
            return False
        ea = exact_a()
        eb = exact_b()
        if ea is None or eb is None:
            fx, fy = x / a.den, y / b.den
            return fx >= fy if or_equal else fx > fy
        return exact_sign(ea, eb) >= least

    return check


def _greater(a: _Source, b: _Source, *, or_equal: bool) -> Check:
    """``a > b`` (or ``a >= b``) without division; False while either side is undefined."""
    if isinstance(a, Band | Vwap) or isinstance(b, Band | Vwap):
        return _greater_exact(a, b, or_equal=or_equal)
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
    return _scaled_check(a, b, ad, bd, or_equal=or_equal)


def _scaled_check(a: _Source, b: _Source, ad: int, bd: int, *, or_equal: bool) -> Check:
    """``a.num * bd > b.num * ad`` (or ``>=``), skipping a multiplication by 1 (prices in
    1e-8 units are multi-digit ints, so each product allocates)."""
    if bd == 1:
        if or_equal:

            def check() -> bool:
                x = a.num
                y = b.num
                return x is not None and y is not None and x >= y * ad

        else:

            def check() -> bool:
                x = a.num
                y = b.num
                return x is not None and y is not None and x > y * ad

        return check
    if ad == 1:
        if or_equal:

            def check() -> bool:
                x = a.num
                y = b.num
                return x is not None and y is not None and x * bd >= y

        else:

            def check() -> bool:
                x = a.num
                y = b.num
                return x is not None and y is not None and x * bd > y

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


class _Operands:
    """The operand values of one timeframe (the run's bars, or one higher timeframe):
    PRICE, OPEN/HIGH/LOW/VOLUME, VWAP and the period indicators a set of rules reads.

    :meth:`update` takes one bar of that timeframe, prices as whole 1e-8 units.
    """

    __slots__ = (
        "price",
        "sources",
        "close_updates",
        "open",
        "high",
        "low",
        "volume",
        "vwaps",
        "extra",
    )

    def __init__(
        self,
        names: Iterable[str],
        suffix: str,
        vwap_session: Callable[[int], Hashable] | None,
        vwap_utc_offset: int,
    ) -> None:
        self.price = Value(SCALE)
        self.open: Value | None = None
        self.high: Value | None = None
        self.low: Value | None = None
        self.volume: Value | None = None
        self.vwaps: list[Vwap] = []
        close_updates: list[Callable[[int], None]] = []
        sources: dict[str, _Source] = {"PRICE" + suffix: self.price}
        bands: dict[int, Bollinger] = {}
        for base in sorted(names):
            name = base + suffix
            kind, n = split_operand(base)
            if kind == "PRICE":
                continue
            if kind == "OPEN":
                self.open = sources[name] = Value(SCALE)
            elif kind == "HIGH":
                self.high = sources[name] = Value(SCALE)
            elif kind == "LOW":
                self.low = sources[name] = Value(SCALE)
            elif kind == "VOLUME":
                self.volume = sources[name] = Value(1)
            elif kind == "VWAP":
                vwap = Vwap(SCALE, session_key=vwap_session, utc_offset=vwap_utc_offset)
                self.vwaps.append(vwap)
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
        self.sources = sources
        self.close_updates = tuple(close_updates)
        self.extra = any(
            x is not None for x in (self.open, self.high, self.low, self.volume)
        ) or bool(self.vwaps)

    def update(self, time: int, o: int, h: int, lo: int, c: int, volume: float) -> None:
        self.price.num = c
        for update in self.close_updates:
            update(c)
        if self.extra:
            if self.open is not None:
                self.open.num = o
            if self.high is not None:
                self.high.num = h
            if self.low is not None:
                self.low.num = lo
            if self.volume is not None:
                self.volume.num = volume
            for vwap in self.vwaps:
                vwap.update(time, h, lo, c, volume)


class _Timeframe:
    """A higher timeframe of one symbol (DESIGN §7.2): builds its bars from the run's bars in
    UTC-aligned buckets (``time - time % seconds``) and updates its operands when one closes.

    A bucket closes when a run bar reaching its end arrives (that run bar sees it: its close
    time is the bucket's end) or when the first run bar of a later bucket arrives, before
    that bar is evaluated. Every bucket holding a run bar makes a bar, partial ones included;
    an empty bucket makes none. The bar still forming is never visible. Open, high, low and
    volume are only kept when an operand of this timeframe reads them.
    """

    __slots__ = ("seconds", "operands", "full", "bucket", "o", "h", "lo", "c", "v")

    def __init__(self, seconds: int, operands: _Operands) -> None:
        self.seconds = seconds
        self.operands = operands
        self.full = operands.extra
        self.bucket: int | None = None
        self.o = self.h = self.lo = self.c = 0
        self.v: float = 0

    def add(
        self, time: int, close_time: int, o: int, h: int, lo: int, c: int, volume: float
    ) -> None:
        """Take one run bar, prices in 1e-8 units (``o``, ``h``, ``lo`` are only read when
        an operand of this timeframe needs them)."""
        start = time - time % self.seconds
        if start != self.bucket:
            if self.bucket is not None:
                self.close()
            self.bucket = start
            if self.full:
                self.o = o
                self.h = h
                self.lo = lo
                self.v = volume
        elif self.full:
            if h > self.h:
                self.h = h
            if lo < self.lo:
                self.lo = lo
            self.v += volume
        self.c = c
        if close_time >= start + self.seconds:
            self.close()

    def close(self) -> None:
        """Close the bucket in progress, if any (the end of a file closes it as it is)."""
        if self.bucket is not None:
            self.operands.update(self.bucket, self.o, self.h, self.lo, self.c, self.v)
            self.bucket = None


class SymbolInputs:
    """Every operand value a set of rules reads on one symbol, updated once per bar and shared
    by those rules' machines (so three rules reading MA20@1m keep one MA20@1m).

    :meth:`step` takes a closed bar; it returns False for a bar whose close time is not after
    the last one taken (re-delivery after a reconnect), which then changes nothing.
    """

    __slots__ = ("sources", "_last_close", "_run", "_frames", "_price", "_ohl")

    def __init__(
        self,
        operands: Iterable[str],
        *,
        vwap_session: Callable[[int], Hashable] | None = None,
        vwap_utc_offset: int = US_SESSION_UTC_OFFSET,
    ) -> None:
        by_tf: dict[int | None, set[str]] = {None: set()}
        for name in operands:
            base, tf = split_timeframe(name)
            by_tf.setdefault(tf, set()).add(base)
        self._last_close = _NO_BAR
        self._run = _Operands(by_tf.pop(None), "", vwap_session, vwap_utc_offset)
        self._price = self._run.price
        sources = dict(self._run.sources)
        frames = []
        for tf in sorted(by_tf):  # type: ignore[type-var]  # None was popped
            assert tf is not None
            ops = _Operands(by_tf[tf], "@" + TIMEFRAME_NAMES[tf], vwap_session, vwap_utc_offset)
            sources.update(ops.sources)
            frames.append(_Timeframe(tf, ops))
        self._frames = tuple(frames)
        # Whether open, high and low are read (else only the close is converted).
        self._ohl = self._run.extra or any(frame.full for frame in frames)
        self.sources: dict[str, _Source] = sources

    def step(
        self, time: int, seconds: int, open: float, high: float, low: float, close: float,
        volume: float,
    ) -> bool:  # fmt: skip
        """Take one closed bar (prices as floats, each read as the exact 8-decimal number its
        shortest text denotes). Raises :class:`PriceError` (and changes nothing) for a price
        with digits below 1e-8: the core never rounds a price."""
        close_time = time + seconds
        if close_time <= self._last_close:
            return False
        # Fast exact conversion (see price_units): below 2**26, when the float of the
        # 8-decimal number round() found is the price itself, that number is its exact value.
        try:
            p = round(close * SCALE_FLOAT)
        except (ValueError, OverflowError):
            p = price_to_int(close)  # raises PriceError: NaN or infinity
        if p / SCALE != close or not -FAST_LIMIT < close < FAST_LIMIT:
            p = price_to_int(close)
        run = self._run
        if self._ohl:
            o, h, lo = price_to_int(open), price_to_int(high), price_to_int(low)
            self._last_close = close_time
            if run.extra:
                run.update(time, o, h, lo, p, volume)
            else:
                self._price.num = p
                for update in run.close_updates:
                    update(p)
            for frame in self._frames:
                frame.add(time, close_time, o, h, lo, p, volume)
            return True
        # Only closes are read (run.extra is False too): the usual case, kept short.
        self._last_close = close_time
        self._price.num = p
        for update in run.close_updates:
            update(p)
        for frame in self._frames:
            frame.add(time, close_time, p, p, p, p, volume)
        return True

    def finish(self) -> None:
        """The data ends (end of a file): close every timeframe's bucket in progress."""
        for frame in self._frames:
            frame.close()

    @property
    def price(self) -> int:
        """The last bar's close in 1e-8 units (after at least one :meth:`step`)."""
        return self._price.num  # type: ignore[return-value]  # step set it: an int

    @property
    def last_close_time(self) -> int | None:
        return None if self._last_close == _NO_BAR else self._last_close


class SymbolMachine:
    """One rule on one symbol: cross/edge memory, cooldown, de-duplication, and (unless it
    shares a :class:`SymbolInputs` through :class:`SymbolRules`) its own operand values.

    Feed closed bars in time order: :meth:`warm` for history (never emits), :meth:`on_bar`
    for live or replayed bars. A bar whose close time is not after the last processed one is
    ignored (re-delivery after a reconnect), so a signal is unique per bar close time.
    """

    __slots__ = (
        "rule",
        "symbol",
        "rule_id",
        "side",
        "state",
        "cooldown_until",
        "_inputs",
        "_step_inputs",
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
        inputs: SymbolInputs | None = None,
    ) -> None:
        self.rule = rule
        self.symbol = symbol
        self.rule_id = rule_id if rule_id is not None else rule.rule_id
        self.side = rule.side
        self.state: str = WAIT
        self.cooldown_until: int | None = None
        self._edge = rule.trigger == "edge"
        self._prev_truth: bool | None = None
        self._cooldown = rule.cooldown_sec
        if inputs is None:
            inputs = SymbolInputs(
                rule.operands(), vwap_session=vwap_session, vwap_utc_offset=vwap_utc_offset
            )
        self._inputs = inputs
        self._step_inputs = inputs.step
        sources = inputs.sources
        shown = {"PRICE", *rule.operands()}
        self._display = tuple((name, sources[name]) for name in sorted(shown, key=_display_order))
        self._evaluate = self._compile(rule.conditions, rule.logic)

    def _source(self, operand: str | int | float) -> _Source:
        if isinstance(operand, str):
            return self._inputs.sources[operand]
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

    def _truth(self) -> bool:
        """Whether the rule fires on the bar just taken in (before cooldown)."""
        truth = bool(self._evaluate())
        if self._edge:
            fire = truth and self._prev_truth is False
            self._prev_truth = truth
            return fire
        return truth

    def warm(self, bar: Bar) -> None:
        """Feed a history bar: indicators and cross/edge memory only, never a signal."""
        try:
            stepped = self._step_inputs(
                bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume
            )
        except PriceError as err:
            raise _named(err, self.symbol) from None
        if stepped:
            self._truth()

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
        """:meth:`on_bar` for a bar given as plain values (bulk replay skips building Bars).

        Raises :class:`PriceError` naming the symbol for a price with digits below 1e-8
        (nothing changes; the core never rounds a price)."""
        try:
            if not self._step_inputs(time, seconds, open, high, low, close, volume):
                return None
        except PriceError as err:
            raise _named(err, self.symbol) from None
        return self.decide(time + seconds)

    def decide(self, close_time: int) -> Signal | None:
        """Evaluate the bar the inputs just took in (closing at ``close_time``): the state
        machine's step. :class:`SymbolRules` calls it once per rule after one shared step."""
        # A level rule fires when it holds (every check returns a bool): no _truth() call.
        fire = self._truth() if self._edge else self._evaluate()
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
        # The price as the core holds it, in 1e-8 units: 238.73, never 238.73000000000002.
        price = self._inputs.price / SCALE
        return Signal(
            self.symbol, close_time, price, self.rule_id, self._signal_values(), self.side
        )

    def resume(self, last_signal_close_time: int) -> None:
        """Continue where a run that stopped unexpectedly left off: the state the rule had
        right after firing on the bar closing at ``last_signal_close_time`` (COOLDOWN until
        that time + the cooldown; the next bar ends an expired one, as it would have).

        Call it after the warm-up, before the first bar fed with :meth:`on_bar`, with this
        rule's last signal before that bar: warm-up rebuilds the indicators and the cross and
        edge memory, the signal the cooldown, so the machine then fires exactly what one that
        never stopped fires."""
        self.cooldown_until = last_signal_close_time + self._cooldown
        self.state = COOLDOWN

    def finish(self) -> None:
        """The data ends: close the higher timeframes' buckets in progress (no signal)."""
        self._inputs.finish()

    @property
    def last_close_time(self) -> int | None:
        """Close time of the last bar processed (warm or live); None before any bar."""
        return self._inputs.last_close_time

    def last_values(self) -> dict[str, float | None]:
        """Current operand values in price units (None while undefined), for display: see
        :func:`shown_value`."""
        return {
            name: None if src.num is None else shown_value(src.num, src.den)
            for name, src in self._display
        }

    def _signal_values(self) -> dict[str, float]:
        return {
            name: shown_value(src.num, src.den)
            for name, src in self._display
            if src.num is not None
        }


class SymbolRules:
    """Several rules on one symbol (DESIGN §7.2): one :class:`SymbolMachine` per rule, each
    with its own state machine, sharing one :class:`SymbolInputs`, so a bar costs one update
    of every distinct operand plus one evaluation per rule."""

    __slots__ = ("symbol", "machines", "_inputs", "_step", "_decides")

    def __init__(
        self,
        rules: Sequence[RuleDef],
        symbol: str,
        *,
        rule_ids: Sequence[int | None] | None = None,
        vwap_session: Callable[[int], Hashable] | None = None,
        vwap_utc_offset: int = US_SESSION_UTC_OFFSET,
    ) -> None:
        if rule_ids is not None and len(rule_ids) != len(rules):
            raise ValueError("rule_ids must name one id per rule")
        ids = list(rule_ids) if rule_ids is not None else [rule.rule_id for rule in rules]
        operands: set[str] = set()
        for rule in rules:
            operands |= rule.operands()
        self.symbol = symbol
        self._inputs = SymbolInputs(
            operands, vwap_session=vwap_session, vwap_utc_offset=vwap_utc_offset
        )
        self.machines = tuple(
            SymbolMachine(rule, symbol, rule_id=rule_id, inputs=self._inputs)
            for rule, rule_id in zip(rules, ids, strict=True)
        )
        self._step = self._inputs.step
        self._decides = tuple(machine.decide for machine in self.machines)

    def warm(self, bar: Bar) -> None:
        """Feed a history bar: indicators and cross/edge memory only, never a signal."""
        try:
            stepped = self._step(
                bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume
            )
        except PriceError as err:
            raise _named(err, self.symbol) from None
        if stepped:
            for machine in self.machines:
                machine._truth()

    def on_bar(self, bar: Bar) -> list[Signal]:
        """Feed a closed bar; the signals it fires, in the order of the rules."""
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
    ) -> list[Signal]:
        """:meth:`on_bar` for a bar given as plain values; :class:`PriceError` as in
        :meth:`SymbolMachine.on_values`."""
        try:
            if not self._step(time, seconds, open, high, low, close, volume):
                return []
        except PriceError as err:
            raise _named(err, self.symbol) from None
        close_time = time + seconds
        out = []
        for decide in self._decides:
            signal = decide(close_time)
            if signal is not None:
                out.append(signal)
        return out

    def resume(self, rule_id: int | None, last_signal_close_time: int) -> None:
        """:meth:`SymbolMachine.resume` for the rule ``rule_id``: it fired last on the bar
        closing at ``last_signal_close_time``. ValueError for a rule id not of these rules."""
        found = [machine for machine in self.machines if machine.rule_id == rule_id]
        if not found:
            raise ValueError(f"{self.symbol} runs no rule with id {rule_id}")
        for machine in found:
            machine.resume(last_signal_close_time)

    def catch_up(self, bar: Bar, rule_ids: Container[int | None]) -> list[Signal]:
        """A history bar that a run which stopped unexpectedly never judged: the rules in
        ``rule_ids`` take it live (:meth:`on_bar`: their signals, in the order of the rules),
        the others as warm-up (:meth:`warm`: a rule edited or added since never fires on old
        bars)."""
        try:
            if not self._step(
                bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close, bar.volume
            ):
                return []
        except PriceError as err:
            raise _named(err, self.symbol) from None
        close_time = bar.close_time
        out = []
        for machine in self.machines:
            if machine.rule_id in rule_ids:
                signal = machine.decide(close_time)
                if signal is not None:
                    out.append(signal)
            else:
                machine._truth()
        return out

    def finish(self) -> None:
        """The data ends: close the higher timeframes' buckets in progress (no signal)."""
        self._inputs.finish()

    @property
    def last_close_time(self) -> int | None:
        return self._inputs.last_close_time

    def last_values(self) -> dict[str, float | None]:
        """Every rule's operand values in price units (None while undefined), for display."""
        values: dict[str, float | None] = {}
        for machine in self.machines:
            values.update(machine.last_values())
        return {name: values[name] for name in sorted(values, key=_display_order)}


def _named(err: PriceError, symbol: str) -> PriceError:
    """The error with the symbol in front: ``AAPL: price 1.000000001 is finer than ...``."""
    return PriceError(f"{symbol}: {err}")


def _display_order(name: str) -> tuple[int, int, str, int]:
    base, tf = split_timeframe(name)
    kind, n = split_operand(base)
    order = ("PRICE", "OPEN", "HIGH", "LOW", "VOLUME", "VWAP", "MA", "EMA", "BBUPPER", "BBLOWER")
    rank = order.index(kind) if kind in order else len(order)
    return tf or 0, rank, kind, n or 0
