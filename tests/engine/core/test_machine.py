"""Per-symbol state machine: operands, operators, logic, triggers, cooldown, warm-up, ties."""

import pytest

from engine.core.bars import Bar
from engine.core.machine import Signal, SymbolMachine
from engine.core.rules import DEFAULT_RULE_DEFINITION, operand_period, validate_definition
from engine.core.text import parse_text

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC


def make_bar(close, i=0, *, seconds=5, symbol="AAPL", open=None, high=None, low=None,
             volume=100.0):  # fmt: skip
    open = close if open is None else open
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return Bar(symbol, T0 + i * seconds, seconds, open, high, low, close, volume)


def make_machine(text="PRICE > MA5 AND MA5 > MA10", *, cooldown=0, trigger="level", **meta):
    rule = validate_definition({**parse_text(text), "cooldown_sec": cooldown, "trigger": trigger,
                                **meta})  # fmt: skip
    return SymbolMachine(rule, "AAPL")


def fired(machine, closes, *, start=0, seconds=5):
    """Indices of the bars (by position in ``closes``) that produced a signal."""
    out = []
    for i, close in enumerate(closes, start):
        bar = close if isinstance(close, Bar) else make_bar(close, i, seconds=seconds)
        if machine.on_bar(bar) is not None:
            out.append(i)
    return out


RISING = [100 + i * 0.01 for i in range(60)]


@pytest.mark.parametrize(
    "operand",
    ["PRICE", "OPEN", "HIGH", "LOW", "VOLUME", "VWAP", "MA5", "MA10", "MA20", "MA2", "EMA9",
     "RSI14", "BBUPPER20", "BBLOWER20", "MA200"],
)  # fmt: skip
def test_every_operand_fires_first_on_the_bar_it_becomes_defined(operand):
    machine = make_machine(f"{operand} > 0")
    closes = [100 + i * 0.01 for i in range(operand_period(operand) + 5)]
    assert fired(machine, closes)[0] == operand_period(operand) - 1
    assert machine.last_values()[operand] > 0


def test_undefined_operand_makes_its_condition_false_even_with_or():
    machine = make_machine("MA20 > 0 OR MA5 < 0")
    assert fired(machine, RISING[:19]) == []


@pytest.mark.parametrize(
    ("op", "expected"),
    [(">", [2]), ("<", [0]), (">=", [1, 2]), ("<=", [0, 1])],
)
def test_comparison_operators_against_a_constant(op, expected):
    assert fired(make_machine(f"PRICE {op} 100.5"), [100.49, 100.5, 100.51]) == expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [(">", [2]), ("<", [0]), (">=", [1, 2]), ("<=", [0, 1])],
)
def test_comparison_operators_between_operands(op, expected):
    machine = make_machine(f"OPEN {op} PRICE")
    bars = [
        make_bar(10.0, 0, open=9.99),
        make_bar(10.0, 1, open=10.0),
        make_bar(10.0, 2, open=10.01),
    ]
    assert fired(machine, bars) == expected


def test_crosses_above_and_below():
    closes = [10, 10, 11, 12, 9, 9, 10, 10.5]
    assert fired(make_machine("PRICE crosses_above 10"), closes) == [2, 7]
    assert fired(make_machine("PRICE crosses_below 10"), closes) == [4]
    # Touching the level is not crossing it; leaving from equality is.
    assert fired(make_machine("PRICE crosses_above 10"), [9, 10, 10, 10.01]) == [3]


def test_crossing_on_the_first_defined_bar_does_not_fire():
    # MA2 is first defined on bar 1, already above MA... PRICE crosses MA2 needs two defined bars.
    machine = make_machine("PRICE crosses_above MA2")
    assert fired(machine, [10, 11, 12]) == []
    machine = make_machine("MA2 crosses_above MA3")
    # Bar 2 is the first with both defined and MA2 > MA3 there; no previous bar to cross from.
    assert fired(machine, [10, 11, 12, 13, 12, 11, 12, 13, 14]) == [7]


def test_crossing_on_the_very_first_bar_does_not_fire():
    assert fired(make_machine("PRICE crosses_above 5"), [10, 11]) == []


def test_and_needs_every_condition_or_needs_one():
    closes = [10, 11, 12, 11, 10]
    assert fired(make_machine("PRICE > 10.5 AND PRICE < 11.5"), closes) == [1, 3]
    assert fired(make_machine("PRICE < 10.5 OR PRICE > 11.5"), closes) == [0, 2, 4]


def test_and_keeps_cross_memory_even_when_another_condition_is_false():
    # On bar 2 the price crosses 10 while VOLUME > 0 is false; memory still moves on, so the
    # cross is not reported late on bar 3.
    machine = make_machine("VOLUME > 0 AND PRICE crosses_above 10")
    bars = [make_bar(9, 0), make_bar(9, 1), make_bar(11, 2, volume=0), make_bar(12, 3)]
    assert fired(machine, bars) == []


def test_or_with_crosses_evaluates_every_cross():
    machine = make_machine("PRICE crosses_above 10 OR PRICE crosses_above 20")
    assert fired(machine, [5, 15, 25, 5, 25]) == [1, 2, 4]


def test_level_trigger_fires_on_every_true_bar_outside_cooldown():
    assert fired(make_machine("PRICE > 10"), [11, 12, 9, 13]) == [0, 1, 3]


def test_edge_trigger_fires_only_when_the_rule_becomes_true():
    machine = make_machine("PRICE > 10", trigger="edge")
    assert fired(machine, [9, 11, 12, 9, 13, 14]) == [1, 4]


def test_edge_trigger_does_not_fire_on_the_very_first_bar():
    assert fired(make_machine("PRICE > 10", trigger="edge"), [11, 12, 9, 11]) == [3]


def test_edge_treats_an_undefined_previous_bar_as_false():
    # DESIGN: an undefined operand makes a condition false, so the rule was false on bar 3.
    assert fired(make_machine("PRICE >= MA5", trigger="edge"), [10] * 8) == [4]


def test_cooldown_ends_exactly_at_close_time_plus_cooldown_sec():
    machine = make_machine("PRICE > 10", cooldown=60)
    assert machine.on_bar(make_bar(11, 0)) is not None  # closes at T0 + 5
    assert machine.state == "COOLDOWN"
    assert machine.cooldown_until == T0 + 65
    # Bars closing at T0+10 .. T0+60 are inside the cooldown.
    assert [machine.on_bar(make_bar(11, i)) for i in range(1, 12)] == [None] * 11
    assert machine.state == "COOLDOWN"
    signal = machine.on_bar(make_bar(11, 12))  # closes at T0 + 65 == cooldown_until
    assert signal is not None and signal.close_time == T0 + 65
    assert machine.cooldown_until == T0 + 125


def test_cooldown_one_second_short_stays_silent():
    machine = make_machine("PRICE > 10", cooldown=61)
    assert fired(machine, [11] * 14) == [0, 13]


def test_cooldown_returns_to_wait_when_a_later_bar_does_not_fire():
    machine = make_machine("PRICE > 10", cooldown=10)
    assert fired(machine, [11, 9, 9, 9]) == [0]
    assert machine.state == "WAIT" and machine.cooldown_until is None


def test_zero_cooldown_fires_on_consecutive_bars():
    assert fired(make_machine("PRICE > 10", cooldown=0), [11, 11, 11]) == [0, 1, 2]


def test_cooldown_uses_bar_time_across_gaps():
    machine = make_machine("PRICE > 10", cooldown=300)
    bars = [make_bar(11, 0, seconds=60), make_bar(11, 4, seconds=60), make_bar(11, 5, seconds=60)]
    assert fired(machine, bars) == [0, 2]


def test_edge_condition_that_turns_true_during_cooldown_is_not_reported_later():
    machine = make_machine("PRICE > 10", cooldown=20, trigger="edge")
    assert fired(machine, [9, 11, 9, 11, 11, 11, 11, 9, 11]) == [1, 8]


def test_warm_up_bars_fill_indicators_but_never_emit():
    machine = make_machine("PRICE > MA5 AND MA5 > MA10")
    for i, close in enumerate(RISING[:30]):
        machine.warm(make_bar(close, i))
    assert machine.state == "WAIT" and machine.cooldown_until is None
    assert machine.last_values()["MA10"] is not None
    # The first live bar can fire at once: the indicators are already defined.
    assert machine.on_bar(make_bar(RISING[30], 30)) is not None


def test_warm_up_fills_cross_memory():
    machine = make_machine("PRICE crosses_above 10")
    machine.warm(make_bar(9, 0))
    assert machine.on_bar(make_bar(11, 1)) is not None


def test_warm_up_fills_edge_memory():
    machine = make_machine("PRICE > 10", trigger="edge")
    machine.warm(make_bar(11, 0))
    assert machine.on_bar(make_bar(12, 1)) is None
    machine = make_machine("PRICE > 10", trigger="edge")
    machine.warm(make_bar(9, 0))
    assert machine.on_bar(make_bar(12, 1)) is not None


def test_warm_up_length_is_enough_for_the_rule():
    machine = make_machine("MA5 crosses_above MA10")
    rule = machine.rule
    closes = [10] * rule.warmup_bars()
    for i, close in enumerate(closes):
        machine.warm(make_bar(close, i))
    assert machine.on_bar(make_bar(20, len(closes))) is not None


@pytest.mark.parametrize("price", [0.07, 1.1, 3.3, 100.07, 189.2, 189.23, 255.55, 4999.99])
def test_flat_market_ties_are_exact(price):
    bars = [price] * 30
    assert fired(make_machine("PRICE > MA5"), bars) == []
    assert fired(make_machine("PRICE >= MA5"), bars) == list(range(4, 30))
    assert fired(make_machine("PRICE <= MA20 AND PRICE >= MA20"), bars) == list(range(19, 30))
    assert fired(make_machine("MA5 > MA10 OR MA10 < MA20 OR PRICE < MA10"), bars) == []
    assert fired(make_machine("PRICE >= EMA9 AND PRICE <= EMA9"), bars) == list(range(8, 30))
    assert fired(make_machine("PRICE >= BBUPPER10 AND PRICE <= BBLOWER10"), bars) == list(
        range(9, 30)
    )
    assert fired(make_machine("PRICE >= VWAP AND PRICE <= VWAP"), bars) == list(range(30))
    assert fired(make_machine(f"PRICE >= {price} AND PRICE <= {price}"), bars) == list(range(30))
    assert fired(make_machine("MA5 crosses_above MA10"), bars) == []


def test_redelivered_and_older_bars_are_ignored():
    machine = make_machine("PRICE > 10")
    first = machine.on_bar(make_bar(11, 3))
    assert first is not None
    assert machine.on_bar(make_bar(11, 3)) is None
    assert machine.on_bar(make_bar(11, 1)) is None
    assert machine.last_close_time == T0 + 20
    assert machine.on_bar(make_bar(11, 4)) is not None


def test_warm_then_redelivered_history_does_not_emit():
    machine = make_machine("PRICE > 10")
    for i in range(5):
        machine.warm(make_bar(11, i))
    assert [machine.on_bar(make_bar(11, i)) for i in range(5)] == [None] * 5


def test_signal_carries_identity_price_and_values():
    rule = validate_definition({**DEFAULT_RULE_DEFINITION, "id": 2, "name": "MA Momentum"})
    machine = SymbolMachine(rule, "AAPL")
    signals = [s for i, c in enumerate(RISING[:12]) if (s := machine.on_bar(make_bar(c, i)))]
    signal = signals[0]
    assert signal == Signal("AAPL", T0 + 50, RISING[9], 2,
                            {"PRICE": 100.09, "MA5": 100.07, "MA10": 100.045})  # fmt: skip
    assert SymbolMachine(rule, "AAPL", rule_id=7).rule_id == 7


def test_last_values_before_and_after_definition():
    machine = make_machine("PRICE > MA5 AND RSI14 < 70 AND VWAP > 0")
    assert machine.last_values() == {"PRICE": None, "VWAP": None, "MA5": None, "RSI14": None}
    fired(machine, [10, 10.5, 11])
    values = machine.last_values()
    assert values["PRICE"] == 11 and values["MA5"] is None and values["RSI14"] is None
    assert values["VWAP"] == pytest.approx(10.5)


def test_vwap_session_key_can_be_supplied():
    rule = validate_definition({**parse_text("PRICE > VWAP"), "cooldown_sec": 0})
    machine = SymbolMachine(rule, "AAPL", vwap_session=lambda t: t // 10)
    bars = [make_bar(10, 0), make_bar(12, 1), make_bar(11, 2)]
    # Bar 2 starts a new session (t // 10 changes), so VWAP restarts at its own price.
    assert fired(machine, bars) == [1]


def test_on_values_behaves_like_on_bar():
    text = "PRICE > VWAP AND HIGH > OPEN AND LOW < PRICE AND VOLUME >= 100 AND PRICE > MA3"
    by_bar, by_values = make_machine(text), make_machine(text)
    for i, close in enumerate([10, 10.2, 10.1, 10.4, 10.3, 10.6, 10.8, 10.7]):
        bar = make_bar(close, i, open=close - 0.1, high=close + 0.2, low=close - 0.2,
                       volume=100.0 + i)  # fmt: skip
        expected = by_bar.on_bar(bar)
        got = by_values.on_values(bar.time, bar.seconds, bar.open, bar.high, bar.low, bar.close,
                                  bar.volume)  # fmt: skip
        assert got == expected
    assert by_bar.last_values() == by_values.last_values()
    assert by_bar.on_bar(make_bar(11, 20, open=10.9, high=11.2, low=10.8)) is not None
