"""Higher-timeframe operands (DESIGN §7.2) against a straightforward recomputation.

The reference below rebuilds, for every run bar, all TF bars whose bucket has ended by the
run bar's close time (from every run bar so far, bucket by bucket, in exact fractions) and
reads the operand off the last of them. The core does it incrementally; both must agree on
every bar, including the bucket-boundary bar, gaps and partial buckets.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.bars import Bar
from engine.core.machine import SymbolMachine, SymbolRules
from engine.core.rules import RuleError, timeframe_problem, validate_definition
from engine.core.text import format_text, parse_text

RUN = 5  # run bar size, seconds
BASE = 1_765_877_400  # 2025-12-16T09:30:00Z, a whole hour: buckets of every TF start here


def rule(text: str, **extra: object):
    return validate_definition({**parse_text(text), "cooldown_sec": 0, **extra})


def bar(t: int, close: str, *, high: str | None = None, low: str | None = None,
        open: str | None = None, volume: float = 100.0, seconds: int = RUN) -> Bar:  # fmt: skip
    c = float(close)
    return Bar(
        "AAPL", t, seconds,
        float(open) if open else c, float(high) if high else c, float(low) if low else c,
        c, volume,
    )  # fmt: skip


# --- the reference ----------------------------------------------------------------------


def tf_bars(bars: list[Bar], tf: int, until: int) -> list[tuple[int, Fraction, Fraction, Fraction,
                                                                 Fraction, float]]:  # fmt: skip
    """Closed TF bars (start, open, high, low, close, volume) whose end is ≤ ``until``."""
    buckets: dict[int, list[Bar]] = {}
    for b in bars:
        buckets.setdefault(b.time - b.time % tf, []).append(b)
    out = []
    for start in sorted(buckets):
        if start + tf > until:
            continue
        group = buckets[start]
        out.append(
            (
                start,
                Fraction(str(group[0].open)),
                max(Fraction(str(b.high)) for b in group),
                min(Fraction(str(b.low)) for b in group),
                Fraction(str(group[-1].close)),
                sum(b.volume for b in group),
            )
        )
    return out


def reference(bars: list[Bar], name: str, tf: int, until: int) -> Fraction | float | None:
    return read(tf_bars(bars, tf, until), name)


def read(closed: list, name: str) -> Fraction | float | None:
    """``name`` (PRICE, OPEN, HIGH, LOW, VOLUME or MA<n>) off the closed TF bars."""
    if not closed:
        return None
    last = closed[-1]
    if name == "PRICE":
        return last[4]
    if name == "OPEN":
        return last[1]
    if name == "HIGH":
        return last[2]
    if name == "LOW":
        return last[3]
    if name == "VOLUME":
        return last[5]
    assert name.startswith("MA")
    n = int(name[2:])
    if len(closed) < n:
        return None
    return sum(b[4] for b in closed[-n:]) / n


# --- properties -------------------------------------------------------------------------

OPERANDS = ("PRICE", "OPEN", "HIGH", "LOW", "VOLUME", "MA2", "MA3")


@st.composite
def series(draw: st.DrawFn) -> list[Bar]:
    """5-s bars with gaps (whole missing buckets too), starting anywhere in a bucket."""
    t = BASE + draw(st.integers(0, 120)) * RUN
    price = 10000
    bars = []
    for _ in range(draw(st.integers(1, 90))):
        t += RUN * draw(st.sampled_from([1, 1, 1, 1, 2, 3, 12, 13, 61]))
        price = max(1, price + draw(st.integers(-7, 7)))
        spread = draw(st.integers(0, 4))
        o = max(1, price + draw(st.integers(-3, 3)))
        bars.append(
            Bar(
                "AAPL",
                t,
                RUN,
                o / 100,
                (max(o, price) + spread) / 100,
                max(1, min(o, price) - spread) / 100,
                price / 100,
                float(draw(st.integers(0, 50))),
            )  # fmt: skip
        )
    return bars


@settings(max_examples=60, deadline=None)
@given(series(), st.sampled_from(["1m", "5m", "5s"]))
def test_timeframe_values_match_a_recomputation_from_aggregated_bars(bars, tf_name):
    tf = {"5s": 5, "1m": 60, "5m": 300}[tf_name]
    names = [f"{op}@{tf_name}" for op in OPERANDS]
    text = " AND ".join(f"{name} > 0" for name in names)
    machine = SymbolMachine(rule(text), "AAPL")
    seen: list[Bar] = []
    for b in bars:
        machine.on_bar(b)
        seen.append(b)
        values = machine.last_values()
        closed = tf_bars(seen, tf, b.close_time)
        for op, name in zip(OPERANDS, names, strict=True):
            want = read(closed, op)
            got = values[name]
            if want is None:
                assert got is None, (name, b.time)
            else:
                assert got == float(want), (name, b.time, got, want)


@settings(max_examples=50, deadline=None)
@given(series())
def test_signals_match_the_reference_on_every_bar(bars):
    """``PRICE > MA3@1m`` fires exactly where the recomputation says (cooldown 0)."""
    machine = SymbolMachine(rule("PRICE > MA3@1m"), "AAPL")
    seen: list[Bar] = []
    for b in bars:
        seen.append(b)
        ma = reference(seen, "MA3", 60, b.close_time)
        want = ma is not None and Fraction(str(b.close)) > ma
        assert (machine.on_bar(b) is not None) == want, b.time


@settings(max_examples=40, deadline=None)
@given(series())
def test_crossing_compares_the_operand_on_consecutive_run_bars(bars):
    machine = SymbolMachine(rule("PRICE crosses_above MA2@1m"), "AAPL")
    seen: list[Bar] = []
    prev: tuple[Fraction, Fraction] | None = None
    for b in bars:
        seen.append(b)
        ma = reference(seen, "MA2", 60, b.close_time)
        price = Fraction(str(b.close))
        want = False
        if ma is not None and not isinstance(ma, float):
            want = prev is not None and prev[0] <= prev[1] and price > ma
            prev = (price, ma)
        else:
            prev = None
        assert (machine.on_bar(b) is not None) == want, b.time


# --- worked examples --------------------------------------------------------------------


def test_a_5s_bar_sees_the_minute_it_completes_and_never_the_one_forming():
    """The worked example of the docs: 09:31:55 closes the 09:31 minute and sees it; 09:32:00
    still sees 09:31 (09:32 is forming) until 09:32:55 completes 09:32."""
    machine = SymbolMachine(rule("PRICE@1m > 0"), "AAPL")
    t0 = BASE + 60  # 09:31:00
    for i in range(12):
        machine.on_bar(bar(t0 + i * 5, f"{100 + i}"))
        if i < 11:
            assert machine.last_values()["PRICE@1m"] is None  # 09:31 still forming
    assert machine.last_values()["PRICE@1m"] == 111.0  # 09:31:55–09:32:00 completed it
    machine.on_bar(bar(t0 + 60, "200"))  # 09:32:00–09:32:05
    assert machine.last_values()["PRICE@1m"] == 111.0
    for i in range(1, 12):
        machine.on_bar(bar(t0 + 60 + i * 5, f"{200 + i}"))
    assert machine.last_values()["PRICE@1m"] == 211.0


def test_a_gap_closes_a_partial_bucket_before_the_next_bar_is_evaluated():
    machine = SymbolMachine(rule("PRICE@1m > 0"), "AAPL")
    machine.on_bar(bar(BASE + 10, "50", high="55", low="45", volume=3))
    machine.on_bar(bar(BASE + 15, "51", high="52", low="49", volume=4))
    assert machine.last_values()["PRICE@1m"] is None
    machine.on_bar(bar(BASE + 185, "60"))  # three minutes later: 09:30 closed as it was
    assert machine.last_values()["PRICE@1m"] == 51.0


def test_warm_up_fills_timeframes_and_finish_closes_the_last_bucket():
    machine = SymbolMachine(rule("VOLUME@1m > 0"), "AAPL")
    for i in range(6):  # half a minute of history
        machine.warm(bar(BASE + i * 5, "10", volume=2))
    assert machine.last_values()["VOLUME@1m"] is None
    machine.finish()
    assert machine.last_values()["VOLUME@1m"] == 12.0


def test_several_rules_share_inputs_and_keep_their_own_state_machines():
    buy = rule("PRICE > MA2", side="buy", cooldown_sec=10)
    sell = rule("PRICE < MA2@1m", side="sell")
    rules = SymbolRules([buy, sell], "AAPL", rule_ids=[7, 8])
    out = []
    for i, price in enumerate([10, 11, 12, 13] + [9] * 12 + [8] * 12):
        out += rules.on_bar(bar(BASE + i * 5, str(price)))
    buys = [s for s in out if s.rule_id == 7]
    sells = [s for s in out if s.rule_id == 8]
    assert {s.side for s in buys} == {"buy"} and {s.side for s in sells} == {"sell"}
    # Rising prices fire the buy rule at 09:30:10 (PRICE 11 > MA2 10.5), then every 10 s.
    assert [s.close_time - BASE for s in buys] == [10, 20]
    # Minute 09:30 closes at 9 (known from the 09:30:55 bar), 09:31 at 8 (from 09:31:55):
    # MA2@1m is 8.5 from the bar closing 09:32:00 on, and every 8 below it fires (cooldown 0).
    assert [s.close_time - BASE for s in sells] == [120, 125, 130, 135, 140]
    by_rule = {m.rule_id: m.state for m in rules.machines}
    assert by_rule == {7: "WAIT", 8: "COOLDOWN"}  # a cooldown of 0 ends at the next bar
    assert rules.on_bar(bar(BASE + 5, "1")) == []  # a re-delivered bar changes nothing


def test_a_bar_already_seen_is_ignored_by_all_rules_at_once():
    rules = SymbolRules([rule("PRICE > 0"), rule("PRICE > 1")], "AAPL")
    assert len(rules.on_bar(bar(BASE, "5"))) == 2
    assert rules.on_bar(bar(BASE, "5")) == []
    assert rules.last_close_time == BASE + RUN


def test_text_round_trip_and_canonical_timeframes():
    text = "PRICE@1m > MA20@1m AND RSI14@5m < 30"
    assert format_text(rule("price@1M > ma20@1m and rsi14@5M < 30")) == text
    assert format_text(rule(text)) == text


@pytest.mark.parametrize(
    ("text", "bar_seconds", "problem"),
    [
        ("MA5@5s > 1", 60, "shorter than the run's 1m bars"),
        ("MA5@1m > 1", 5, None),
        ("MA5@1h > 1", 60, None),
        ("MA5 > 1", 60, None),
    ],
)
def test_timeframe_problem(text, bar_seconds, problem):
    found = timeframe_problem(rule(text), bar_seconds)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_unknown_timeframe_and_side_are_sentences():
    with pytest.raises(RuleError, match=r"unknown timeframe in 'MA5@2m'"):
        parse_text("MA5@2m > 1")
    with pytest.raises(RuleError, match="unknown side 'long'"):
        rule("PRICE > 1", side="long")
    assert rule("PRICE > 1", side=None).side is None
    assert rule("PRICE > 1", side="SELL").to_json()["side"] == "sell"
    assert "side" not in rule("PRICE > 1").to_json()


def test_warmup_covers_the_longest_timeframe():
    # MA20@1m on 5 s bars: 20 minutes of 12 bars, a partial first minute, one for crosses.
    assert rule("MA20@1m > 1").warmup_bars(5) == 20 * 12 + 12 + 1
    assert rule("MA20@1m > 1").warmup_bars(60) == 21
    assert rule("MA5 > MA20@1m").warmup_bars(5) == 253
