"""The core is exact on every price with up to 8 decimals (DESIGN §7.1, issue 10).

A reference written with ``fractions.Fraction`` recomputes every operand on every bar of
random 8-decimal price series (steps of 1e-8 to 0.25, flat stretches, prices from 0.00000001
to 10,000) and decides each condition exactly; the core's signals must be the same, bar for
bar, live (``SymbolMachine``) and through ``replay`` of a CSV written with 8 decimals.

PRICE/OPEN/HIGH/LOW, MA, Bollinger bands, VWAP (whole volumes) and decimal constants are
exact in the core, so their comparisons must agree on every bar, ties included. EMA and RSI
are recursive averages whose exact value needs unbounded memory (the denominator of EMA9
after t bars is 5**t), so the core computes them in floats, as TA-Lib does: their values must
be within 1e-12 of the exact ones and their comparisons must agree wherever the exact margin
is more than 1e-9 of the values compared.
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.core.bars import Bar, BarFileError, format_time, iter_csv_bars
from engine.core.indicators import (
    SCALE,
    Bollinger,
    Ema,
    PriceError,
    Rsi,
    Sma,
    Vwap,
    format_price,
    price_decimals,
    price_to_int,
    price_units,
)
from engine.core.machine import SymbolMachine
from engine.core.replay import replay_events
from engine.core.rules import validate_definition

T0 = 1_765_895_400  # 2025-12-16T14:30:00Z, 09:30 New York: one VWAP session for every series
RUN = 5
EXACT = ("PRICE", "OPEN", "HIGH", "LOW", "MA2", "MA3", "MA7", "BBUPPER3", "BBLOWER3",
         "BBUPPER5", "BBLOWER5", "VWAP")  # fmt: skip
FLOATING = ("EMA2", "EMA5", "RSI2", "RSI4")
OPS = (">", ">=", "<", "<=", "crosses_above", "crosses_below")

# --- random 8-decimal bars --------------------------------------------------------------


def text8(units: int) -> str:
    """A price in 1e-8 units as the 8-decimal text a CSV or IB carries (``1.08005000``)."""
    return f"{units // SCALE}.{units % SCALE:08d}"


@st.composite
def series(draw: st.DrawFn, max_bars: int = 40) -> list[tuple[int, int, int, int, int]]:
    """Bars as (open, high, low, close, volume), all in 1e-8 units; volumes whole (shares,
    contracts) or, in some series, with up to 8 decimals (crypto)."""
    base = draw(
        st.sampled_from([1, 1_234, 108_005_000, 23_873_000_000, 600_025_000_000])
        | st.integers(1, 10**12)
    )
    tick = draw(st.sampled_from([1, 3, 5_000, 1_000_000, 25_000_000]))
    fractional = draw(st.booleans())
    price = base
    bars = []
    for _ in range(draw(st.integers(1, max_bars))):
        opened = price
        price = max(1, price + tick * draw(st.integers(-3, 3)))
        high = max(opened, price) + tick * draw(st.integers(0, 2))
        low = max(1, min(opened, price) - tick * draw(st.integers(0, 2)))
        volume = (
            draw(st.integers(0, 40 * SCALE)) if fractional and draw(st.booleans())
            else draw(st.integers(0, 40)) * SCALE
        )  # fmt: skip
        bars.append((opened, high, low, price, volume))
    return bars


def as_bar(i: int, row: tuple[int, int, int, int, int]) -> Bar:
    o, h, lo, c, v = row
    # units / SCALE is the float IB or a CSV reader makes of the 8-decimal text.
    return Bar("X", T0 + RUN * i, RUN, o / SCALE, h / SCALE, lo / SCALE, c / SCALE, v / SCALE)


# --- the exact reference ----------------------------------------------------------------

# A value p + c * sqrt(d), Fractions; bands need the square root, everything else has c = 0.
Quad = tuple[Fraction, Fraction, Fraction]


def ema_fractions(closes: list[Fraction], n: int) -> list[Fraction | None]:
    out: list[Fraction | None] = []
    ema: Fraction | None = None
    for i, x in enumerate(closes):
        if i + 1 == n:
            ema = sum(closes[:n], Fraction(0)) / n  # TA-Lib: seeded with the SMA
        elif ema is not None:
            ema += Fraction(2, n + 1) * (x - ema)
        out.append(ema)
    return out


def rsi_fractions(closes: list[Fraction], n: int) -> list[Fraction | None]:
    out: list[Fraction | None] = [None]
    gain = loss = Fraction(0)
    for i in range(1, len(closes)):
        change = closes[i] - closes[i - 1]
        up, down = max(change, Fraction(0)), max(-change, Fraction(0))
        if i < n:
            gain, loss = gain + up, loss + down
            out.append(None)
            continue
        if i == n:
            gain, loss = (gain + up) / n, (loss + down) / n
        else:
            gain, loss = (gain * (n - 1) + up) / n, (loss * (n - 1) + down) / n
        out.append(100 * gain / (gain + loss) if gain + loss else Fraction(0))
    return out


def reference(rows: list[tuple[int, int, int, int, int]]) -> list[dict[str, Quad | None]]:
    """Every operand on every bar, exactly."""
    f = [tuple(Fraction(x, SCALE) for x in row) for row in rows]
    closes = [bar[3] for bar in f]
    floating = {
        **{f"EMA{n}": ema_fractions(closes, n) for n in (2, 5)},
        **{f"RSI{n}": rsi_fractions(closes, n) for n in (2, 4)},
    }
    out = []
    pv = vol = Fraction(0)
    for i, (o, h, lo, c, v) in enumerate(f):
        zero = Fraction(0)
        values: dict[str, Quad | None] = {
            "PRICE": (c, zero, zero), "OPEN": (o, zero, zero), "HIGH": (h, zero, zero),
            "LOW": (lo, zero, zero),
        }  # fmt: skip
        for n in (2, 3, 5, 7):
            window = closes[i + 1 - n : i + 1] if i + 1 >= n else None
            mean = sum(window, zero) / n if window else None
            values[f"MA{n}"] = (mean, zero, zero) if mean is not None else None
            if window is not None and mean is not None:
                var = sum((x * x for x in window), zero) / n - mean * mean  # population
                values[f"BBUPPER{n}"] = (mean, Fraction(2), var)
                values[f"BBLOWER{n}"] = (mean, Fraction(-2), var)
            else:
                values[f"BBUPPER{n}"] = values[f"BBLOWER{n}"] = None
        pv += (h + lo + c) / 3 * v
        vol += v
        values["VWAP"] = (pv / vol, zero, zero) if vol else None
        for name, seq in floating.items():
            value = seq[i]
            values[name] = (value, zero, zero) if value is not None else None
        out.append(values)
    return out


def sign(x: Fraction) -> int:
    return (x > 0) - (x < 0)


def sign_root(x: Fraction, y: Fraction, d: Fraction) -> int:
    """Sign of x + y * sqrt(d)."""
    if y == 0 or d == 0:
        return sign(x)
    if sign(x) in (0, sign(y)):
        return sign(y)
    return sign(x) if x * x > y * y * d else (sign(y) if x * x < y * y * d else 0)


def compare(a: Quad, b: Quad) -> int:
    """Sign of a - b, exactly."""
    x, y, d, z, e = a[0] - b[0], a[1], a[2], -b[1], b[2]
    first = sign_root(x, y, d)
    if z == 0 or e == 0 or first in (0, sign(z)):
        return sign(z) if first == 0 and z and e else first
    # (x + y sqrt d) and z sqrt e have opposite signs: compare their squares.
    square = sign_root(x * x + y * y * d - z * z * e, 2 * x * y, d)
    return first if square > 0 else (sign(z) if square < 0 else 0)


def quad(value: Quad | None | Fraction) -> Quad | None:
    if isinstance(value, Fraction):
        return (value, Fraction(0), Fraction(0))
    return value


def holds(op: str, a: Quad | None, b: Quad | None) -> bool | None:
    """The plain comparison on one bar; None when an operand is undefined."""
    if a is None or b is None:
        return None
    s = compare(a, b)
    return {">": s > 0, ">=": s >= 0, "<": s < 0, "<=": s <= 0}[op]


def reference_fires(rows, conditions, logic: str = "AND") -> list[int]:
    """Close times where a level rule with no cooldown fires, decided exactly."""
    values = reference(rows)
    fired = []
    for i, now in enumerate(values):
        truths = []
        for left, op, right in conditions:
            a = now[left]
            b = now[right] if isinstance(right, str) else quad(Fraction(repr(right)))  # as written
            if op in ("crosses_above", "crosses_below"):
                before = values[i - 1] if i else None
                pa = before[left] if before else None
                pb = (before[right] if isinstance(right, str) else b) if before else None
                up, down = (">", "<=") if op == "crosses_above" else ("<", ">=")
                truths.append(holds(down, pa, pb) is True and holds(up, a, b) is True)
            else:
                truths.append(holds(op, a, b) is True)
        if all(truths) if logic == "AND" else any(truths):
            fired.append(T0 + RUN * (i + 1))
    return fired


def rule(conditions, logic: str = "AND"):
    return validate_definition({
        "logic": logic,
        "conditions": [{"left": a, "op": op, "right": b} for a, op, b in conditions],
        "cooldown_sec": 0, "trigger": "level",
    })  # fmt: skip


def core_fires(rows, conditions, logic: str = "AND") -> list[tuple[int, float]]:
    machine = SymbolMachine(rule(conditions, logic), "X")
    out = []
    for i, row in enumerate(rows):
        signal = machine.on_bar(as_bar(i, row))
        if signal is not None:
            out.append((signal.close_time, signal.price))
    return out


def closes_at(rows, times: list[int]) -> list[tuple[int, float]]:
    return [(t, rows[(t - T0) // RUN - 1][3] / SCALE) for t in times]


@st.composite
def conditions(draw: st.DrawFn, operands: tuple[str, ...], rows) -> list:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        left = draw(st.sampled_from(operands))
        op = draw(st.sampled_from(OPS))
        if draw(st.booleans()):
            right: str | float = draw(st.sampled_from(operands))
        else:
            # A constant as written: a close of the series (ties!) or one tick beside it.
            units = rows[draw(st.integers(0, len(rows) - 1))][3] + draw(st.integers(-1, 1))
            right = float(text8(max(1, units)))
        if right == left:
            continue
        out.append((left, op, right))
    assume(out)
    return out


# --- properties -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_signals_on_exact_operands_equal_the_fraction_reference(data):
    rows = data.draw(series())
    conds = data.draw(conditions(EXACT, rows))
    logic = data.draw(st.sampled_from(["AND", "OR"]))
    expected = reference_fires(rows, conds, logic)
    got = core_fires(rows, conds, logic)
    assert got == closes_at(rows, expected), conds
    # The signal price is the bar's close as written: 8 decimals at most, no float noise.
    assert all(price_units(price) == round(price * SCALE) for _, price in got)


def margin_is_clear(a: Quad | None, b: Quad | None) -> bool:
    """Whether the exact values differ by more than float rounding can blur (1e-9)."""
    if a is None or b is None:
        return True
    fa = float(a[0]) + float(a[1]) * float(a[2]) ** 0.5
    fb = float(b[0]) + float(b[1]) * float(b[2]) ** 0.5
    return abs(fa - fb) > 1e-9 * (abs(fa) + abs(fb))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_signals_with_ema_and_rsi_equal_the_reference_beyond_float_rounding(data):
    rows = data.draw(series())
    conds = data.draw(conditions(EXACT + FLOATING, rows))
    assume(any(a in FLOATING or b in FLOATING for a, _, b in conds))
    values = reference(rows)
    for i, now in enumerate(values):
        for left, _, right in conds:
            b = now[right] if isinstance(right, str) else quad(Fraction(str(right)))
            assume(margin_is_clear(now[left], b))
            if i:
                before = values[i - 1]
                pb = before[right] if isinstance(right, str) else b
                assume(margin_is_clear(before[left], pb))
    expected = reference_fires(rows, conds)
    assert core_fires(rows, conds) == closes_at(rows, expected), conds


@settings(max_examples=200, deadline=None)
@given(series(max_bars=60))
def test_indicator_values_equal_the_fraction_reference(rows):
    values = reference(rows)
    n = 5
    exact_rsis = rsi_fractions([Fraction(row[3], SCALE) for row in rows], n)
    sma, ema, rsi, bands, vwap = (
        Sma(n, SCALE),
        Ema(n, SCALE),
        Rsi(n),
        Bollinger(n, SCALE),
        Vwap(SCALE),
    )
    for i, (_o, h, lo, c, v) in enumerate(rows):
        for ind in (sma, ema, rsi, bands):
            ind.update(c)
        vwap.update(T0 + RUN * i, h, lo, c, v / SCALE)
        want = values[i]
        exact_ma = want["MA5"]
        if exact_ma is None:
            assert sma.num is None and bands.upper.num is None
        else:
            assert Fraction(sma.num, sma.den) == exact_ma[0]  # exact, not approximately
            assert sma.value == float(exact_ma[0])
            for band, name in ((bands.upper, "BBUPPER5"), (bands.lower, "BBLOWER5")):
                exact = band.exact()
                assert exact is not None
                p, k, d, den = exact
                ref = want[name]
                assert ref is not None
                # (p + k sqrt(d)) / den is the reference's mean ± 2 sqrt(var), exactly.
                assert Fraction(p, den) == ref[0] and Fraction(k, 1) == ref[1]
                assert Fraction(d, den * den) == ref[2]
        exact_vwap = want["VWAP"]
        if exact_vwap is None:
            assert vwap.num is None
        else:
            ev = vwap.exact()
            assert ev is not None and Fraction(ev[0], ev[3]) == exact_vwap[0]
            assert vwap.value == pytest.approx(float(exact_vwap[0]), rel=1e-15)
        exact_ema, exact_rsi = want["EMA5"], exact_rsis[i]
        if exact_ema is None:
            assert ema.num is None
        else:
            assert ema.value == pytest.approx(float(exact_ema[0]), rel=1e-12)
        if exact_rsi is None:
            assert rsi.num is None
        else:
            assert rsi.value == pytest.approx(float(exact_rsi), rel=1e-12, abs=1e-10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.data())
def test_replay_of_an_8_decimal_csv_equals_the_fraction_reference(tmp_path, data):
    rows = data.draw(series())
    conds = data.draw(conditions(EXACT, rows))
    path = tmp_path / "x_5s.csv"
    lines = ["time,open,high,low,close,volume"]
    lines += [
        f"{T0 + RUN * i},{text8(o)},{text8(h)},{text8(lo)},{text8(c)},{text8(v)}"
        for i, (o, h, lo, c, v) in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    events = list(replay_events(path, rule(conds), bar_seconds=RUN))
    expected = closes_at(rows, reference_fires(rows, conds))
    assert [(e["timestamp"], e["price"]) for e in events] == [
        (format_time(t), price) for t, price in expected
    ]
    for event, (t, _) in zip(events, expected, strict=True):
        # The JSON number is the close as written in the file: its exact value, no noise.
        row = rows[(t - T0) // RUN - 1]
        assert Fraction(json.dumps(event["price"])) == Fraction(row[3], SCALE)


# --- single cases -----------------------------------------------------------------------


def test_a_7_decimal_fx_price_from_a_float_is_no_longer_rounded():
    # In millionths, 1.0800005 (1080000.5 millionths) was rounded half to even to 1.08:
    # PRICE > 1.08 was false on it.
    machine = SymbolMachine(rule([("PRICE", ">", 1.08)]), "EURUSD:CASH")
    signal = machine.on_bar(Bar("EURUSD:CASH", T0, RUN, 1.08, 1.08, 1.08, 1.0800005, 0))
    assert signal is not None
    assert repr(signal.price) == "1.0800005" and signal.values == {"PRICE": 1.0800005}
    # MA2 of 1.0800005 and 1.0800015 is 1.080001 exactly: >= holds, > does not.
    at_least = SymbolMachine(rule([("MA2", ">=", 1.080001)]), "EURUSD:CASH")
    above = SymbolMachine(rule([("MA2", ">", 1.080001)]), "EURUSD:CASH")
    fired = []
    for i, close in enumerate((1.0800005, 1.0800015)):
        bar = Bar("EURUSD:CASH", T0 + RUN * i, RUN, close, close, close, close, 0)
        fired.append((at_least.on_bar(bar), above.on_bar(bar)))
    last_at_least, last_above = fired[-1]
    assert last_at_least is not None and last_above is None
    assert repr(last_at_least.values["MA2"]) == "1.080001"


@pytest.mark.parametrize(
    ("close", "text"),
    [(238.73, "238.73"), (1.08005, "1.08005"), (0.00001234, "1.234e-05"), (6000.25, "6000.25"),
     (0.00000001, "1e-08"), (12345.12345678, "12345.12345678"), (190.05 + 0.02, "190.07")],
)  # fmt: skip
def test_a_signal_price_is_the_close_with_no_float_noise(close, text):
    signal = SymbolMachine(rule([("PRICE", ">", 0)]), "X").on_bar(
        Bar("X", T0, RUN, close, close, close, close, 1)
    )
    assert signal is not None
    assert repr(signal.price) == text and json.dumps(signal.price) == text
    assert repr(signal.values["PRICE"]) == text


def test_operand_values_show_without_float_noise():
    # EMA of 1.1, 1.2, 1.3 ... is computed in floats; its shown value has no 1e-16 tail.
    machine = SymbolMachine(rule([("EMA2", ">", 0), ("MA3", ">", 0)]), "X")
    signal = None
    for i, close in enumerate((1.1, 1.2, 1.3, 1.3, 1.3)):
        signal = machine.on_bar(Bar("X", T0 + RUN * i, RUN, close, close, close, close, 1))
    assert signal is not None
    for name, value in signal.values.items():
        assert len(repr(value).split(".")[-1]) <= 10, (name, value)
    assert signal.values["MA3"] == 1.3 and signal.values["PRICE"] == 1.3


def test_a_float_finer_than_1e8_is_refused_naming_the_symbol_and_changes_nothing():
    machine = SymbolMachine(rule([("PRICE", ">", 0)]), "BTC:CRYPTO:PAXOS")
    with pytest.raises(PriceError) as caught:
        machine.on_bar(Bar("BTC:CRYPTO:PAXOS", T0, RUN, 1, 1, 1, 1.000000001, 1))
    assert str(caught.value) == (
        "BTC:CRYPTO:PAXOS: price 1.000000001 is finer than 0.00000001; prices finer than "
        "0.00000001 (8 decimals) are not supported"
    )
    assert machine.last_close_time is None
    # An open, high or low read by the rule is checked the same way.
    ohl = SymbolMachine(rule([("HIGH", ">", 0)]), "X")
    with pytest.raises(PriceError, match=r"^X: price 2\.0000000001 is finer"):
        ohl.on_bar(Bar("X", T0, RUN, 1, 2.0000000001, 1, 1, 1))
    with pytest.raises(PriceError, match=r"^X: price nan is not a finite number$"):
        ohl.on_bar(Bar("X", T0, RUN, 1, 1, 1, float("nan"), 1))
    # The same bar time with good prices is then taken: nothing moved.
    signal = machine.on_bar(Bar("BTC:CRYPTO:PAXOS", T0, RUN, 1, 1, 1, 1.00000001, 1))
    assert signal is not None and repr(signal.price) == "1.00000001"


def test_float_noise_at_8_decimals_is_read_as_the_price_it_stands_for():
    noisy = 1.08005 + 0.00002
    assert repr(noisy) == "1.0800699999999999"
    assert price_to_int(noisy) == 108_007_000
    signal = SymbolMachine(rule([("PRICE", ">=", 1.08007)]), "X").on_bar(
        Bar("X", T0, RUN, noisy, noisy, noisy, noisy, 1)
    )
    assert signal is not None and repr(signal.price) == "1.08007"


@pytest.mark.parametrize(
    ("price", "units"),
    [(238.73, 23_873_000_000), (1e-08, 1), (0.00001234, 1_234), (6000.25, 600_025_000_000),
     (99_999_999.12345678, 9_999_999_912_345_678), (123_456_789.5, 12_345_678_950_000_000),
     (0.1 + 0.2, 30_000_000)],
)  # fmt: skip
def test_price_units_are_the_exact_value_of_the_float_text(price, units):
    assert price_units(price) == units
    assert Fraction(units, SCALE) == Fraction(format_price(price))


@pytest.mark.parametrize("price", [1.000000001, 5e-09, 1e-10, 0.123456789])
def test_prices_with_a_ninth_decimal_have_no_units(price):
    assert price_units(price) is None
    with pytest.raises(PriceError, match="is finer than 0.00000001"):
        price_to_int(price)


def test_a_9_decimal_csv_price_is_refused_with_a_sentence(tmp_path):
    path = tmp_path / "btc_5s.csv"
    path.write_text(
        "time,open,high,low,close,volume\n"
        f"{T0},1.00000001,1.00000002,1,1.00000001,1\n"
        f"{T0 + RUN},1,1,1,1.000000001,1\n"
    )
    with pytest.raises(BarFileError) as caught:
        list(iter_csv_bars(path))
    assert str(caught.value) == (
        f"{path}, line 3: column close: price 1.000000001 is finer than 0.00000001; "
        "prices finer than 0.00000001 (8 decimals) are not supported"
    )


@pytest.mark.parametrize(
    "text", ["0.00001234", "1.08005", "1.0800005", "6000.25", "0.00000001", "12345.12345678",
             "1.23456780", "1e-8", "1.5E-7", "99999999.99999999"],
)  # fmt: skip
def test_csv_prices_with_up_to_8_decimals_are_read_exactly(tmp_path, text):
    path = tmp_path / "x_5s.csv"
    path.write_text(f"time,open,high,low,close,volume\n{T0},{text},{text},{text},{text},1\n")
    (bar,) = iter_csv_bars(path)
    assert Fraction(repr(bar.close)) == Fraction(text)
    assert bar.open == bar.high == bar.low == bar.close


@pytest.mark.parametrize(
    ("tick", "decimals"),
    [(0.25, 2), (0.00005, 5), (0.01, 2), (1e-08, 8), (1.0, 0), (5.0, 0), (0.5, 1),
     (0.000001, 6), (0.1 + 0.2, 1)],
)  # fmt: skip
def test_price_decimals_of_a_min_tick(tick, decimals):
    assert price_decimals(tick) == decimals


@pytest.mark.parametrize("tick", [0.0, -0.25, float("nan"), float("inf")])
def test_price_decimals_refuses_a_tick_that_is_not_positive(tick):
    with pytest.raises(ValueError, match="min tick .* must be a positive number"):
        price_decimals(tick)


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(238.73, None, "238.73"), (238.73, 2, "238.73"), (238.7, 2, "238.70"),
     (6000.25, price_decimals(0.25), "6000.25"), (6000.0, 2, "6000.00"), (6000, 2, "6000.00"),
     (1.08005, price_decimals(0.00005), "1.08005"), (1.08, 5, "1.08000"),
     (1.080025, 5, "1.080025"),  # a half-tick midpoint keeps its digit
     (0.00001234, None, "0.00001234"), (0.00001234, 8, "0.00001234"), (1e-08, None, "0.00000001"),
     (190.05 + 0.02, None, "190.07"), (190.05 + 0.02, 2, "190.07"), (0.1 + 0.2, None, "0.3"),
     (1e20, None, "100000000000000000000"), (0.0, 2, "0.00"), (-1.5, None, "-1.5"),
     (float("nan"), 2, "nan")],
)  # fmt: skip
def test_format_price(value, decimals, text):
    assert format_price(value, decimals) == text


def test_exact_comparisons_tie_where_floats_would_not():
    # 0.1 + 0.2 written by a feed stands for 0.3: PRICE >= 0.3 holds, PRICE > 0.3 does not.
    p = 0.1 + 0.2
    bar = Bar("X", T0, RUN, p, p, p, p, 1)
    assert SymbolMachine(rule([("PRICE", ">=", 0.3)]), "X").on_bar(bar) is not None
    assert SymbolMachine(rule([("PRICE", ">", 0.3)]), "X").on_bar(bar) is None


def test_bollinger_band_ties_are_exact():
    # Closes 1, 3 (in 1e-8 units: 0.00000001, 0.00000003): mean 2, sd 1, upper band 4 exactly.
    closes = (0.00000001, 0.00000003)
    machine = SymbolMachine(rule([("BBUPPER2", ">=", 0.00000004)]), "X")
    above = SymbolMachine(rule([("BBUPPER2", ">", 0.00000004)]), "X")
    signals = []
    for i, c in enumerate(closes):
        bar = Bar("X", T0 + RUN * i, RUN, c, c, c, c, 1)
        signals.append((machine.on_bar(bar), above.on_bar(bar)))
    assert signals[-1][0] is not None and signals[-1][1] is None
    assert signals[-1][0].values["BBUPPER2"] == 0.00000004


def test_vwap_is_exact_with_crypto_volumes_and_falls_back_to_floats_below_1e8():
    vwap = Vwap(SCALE, session_key=lambda t: 0)
    vwap.update(T0, 3 * SCALE, 3 * SCALE, 3 * SCALE, 2.0)  # whole first: counted in coins
    vwap.update(T0 + RUN, SCALE, SCALE, SCALE, 0.1)  # 0.1 BTC: the session moves to 1e-8 units
    exact = vwap.exact()
    assert exact is not None
    assert Fraction(exact[0], exact[3]) == (3 * 2 + Fraction(1, 10)) / Fraction(21, 10)
    vwap.update(T0 + 2 * RUN, SCALE, SCALE, SCALE, 0.0000000001)  # finer than 1e-8
    assert vwap.exact() is None and vwap.value == pytest.approx(6.1 / 2.1000000001)
