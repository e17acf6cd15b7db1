"""Resuming after a crash: a machine warmed on the bars before, told its rule's last signal
(:meth:`SymbolRules.resume`), fires exactly what a machine that never stopped fires."""

import random

import pytest

from engine.core.bars import Bar
from engine.core.machine import COOLDOWN, WAIT, SymbolRules
from engine.core.rules import validate_definition
from engine.core.text import parse_text

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC

RULES = {
    "level, cooldown": ("PRICE > MA5 AND MA5 > MA10", "level", 60),
    "level, no cooldown": ("PRICE > MA3", "level", 0),
    "edge, cooldown": ("PRICE > MA5", "edge", 30),
    "edge, no cooldown": ("MA3 < MA8", "edge", 0),
    "cross, cooldown": ("PRICE crosses_above MA5", "level", 45),
    "cross below OR level": ("PRICE crosses_below MA4 OR PRICE > 101.5", "level", 20),
    "cross AND level, edge": ("MA3 crosses_above MA6 AND PRICE > 99", "edge", 10),
    "higher timeframe": ("PRICE > MA3@1m AND MA5 > MA10", "level", 25),
}


def make_rules(*names: str) -> SymbolRules:
    defs = []
    for name in names:
        text, trigger, cooldown = RULES[name]
        defs.append(validate_definition({**parse_text(text), "trigger": trigger,
                                         "cooldown_sec": cooldown}))  # fmt: skip
    return SymbolRules(defs, "AAPL", rule_ids=list(range(1, len(names) + 1)))


def walk(n: int, seed: int) -> list[Bar]:
    """A seeded random walk of 5-second bars (2-decimal prices) with a few gaps."""
    rng = random.Random(seed)
    bars, price, t = [], 100.0, T0
    for _ in range(n):
        price = round(price + rng.choice([-0.06, -0.03, -0.01, 0.0, 0.02, 0.04, 0.05]), 2)
        bars.append(Bar("AAPL", t, 5, price, price, price, price, 100.0))
        t += 5 if rng.random() > 0.05 else 5 * rng.randint(2, 6)  # now and then a gap
    return bars


def uninterrupted(names: tuple[str, ...], bars: list[Bar]) -> list[tuple[int, int | None]]:
    rules = make_rules(*names)
    return [(s.close_time, s.rule_id) for bar in bars for s in rules.on_bar(bar)]


def resumed(
    names: tuple[str, ...], bars: list[Bar], k: int, stored: list[tuple[int, int | None]]
) -> list[tuple[int, int | None]]:
    """A machine that warms bars[:k], restores each rule from ``stored`` (its last signal
    before bar k) and takes bars[k:] live."""
    rules = make_rules(*names)
    for bar in bars[:k]:
        rules.warm(bar)
    first = bars[k].close_time
    for rule_id in range(1, len(names) + 1):
        before = [t for t, r in stored if r == rule_id and t < first]
        if before:
            rules.resume(rule_id, max(before))
    return [(s.close_time, s.rule_id) for bar in bars[k:] for s in rules.on_bar(bar)]


@pytest.mark.parametrize("name", list(RULES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_resumed_machine_fires_what_an_uninterrupted_one_fires(name, seed):
    bars = walk(160, seed)
    expected = uninterrupted((name,), bars)
    assert len(expected) >= 3, "the walk must fire"
    for k in range(1, len(bars)):
        first = bars[k].close_time
        # The crashed run stored its signals up to bar k, or a few after (bars in flight at
        # the kill): those are stored already, the database refuses them again.
        stored_upto = bars[min(k + 3 * (k % 2), len(bars)) - 1].close_time
        stored = [s for s in expected if s[0] <= stored_upto]
        got = resumed((name,), bars, k, stored)
        assert got == [s for s in expected if s[0] >= first], (name, seed, k)


def test_several_rules_on_one_symbol_resume_each_from_its_own_last_signal():
    names = tuple(RULES)
    bars = walk(200, 7)
    expected = uninterrupted(names, bars)
    assert {r for _, r in expected} == set(range(1, len(names) + 1)), "every rule fires"
    for k in range(1, len(bars), 3):
        got = resumed(names, bars, k, expected)
        assert got == [s for s in expected if s[0] >= bars[k].close_time], k


def test_without_resume_a_restarted_machine_fires_during_the_cooldown():
    """Why resume exists: a fresh machine forgets a cooldown and fires again too early."""
    name = "level, cooldown"
    bars = walk(160, 1)
    expected = uninterrupted((name,), bars)
    k = next(i for i, b in enumerate(bars) if b.close_time == expected[0][0]) + 1
    fresh = make_rules(name)
    for bar in bars[:k]:
        fresh.warm(bar)
    got = [(s.close_time, s.rule_id) for bar in bars[k:] for s in fresh.on_bar(bar)]
    assert got != [s for s in expected if s[0] >= bars[k].close_time]
    assert resumed((name,), bars, k, expected) == [
        s for s in expected if s[0] >= bars[k].close_time
    ]


def test_resume_sets_cooldown_from_the_signal_and_the_next_bar_ends_an_expired_one():
    rules = make_rules("level, cooldown")
    machine = rules.machines[0]
    rules.resume(1, T0 + 100)
    assert (machine.state, machine.cooldown_until) == (COOLDOWN, T0 + 160)
    for i in range(12):  # falling prices: the rule never holds
        rules.on_bar(Bar("AAPL", T0 + 200 + 5 * i, 5, 99 - i, 99 - i, 99 - i, 99 - i, 1))
    assert (machine.state, machine.cooldown_until) == (WAIT, None)


def test_resume_of_a_rule_the_symbol_does_not_run_is_refused():
    rules = make_rules("level, cooldown")
    with pytest.raises(ValueError, match="AAPL runs no rule with id 9"):
        rules.resume(9, T0)


def test_catch_up_fires_the_listed_rules_and_warms_the_others():
    """A rule edited since the crash takes the catch-up bars as warm-up: it fires none of
    them, and afterwards it fires exactly what a machine that warmed them fires."""
    names = ("level, no cooldown", "edge, cooldown", "cross, cooldown")
    bars = walk(200, 4)
    catching, live = bars[:120], bars[120:]
    mixed = make_rules(*names)
    warmed_2 = make_rules(*names)
    caught = [(s.close_time, s.rule_id) for bar in catching for s in mixed.catch_up(bar, {1, 3})]
    for bar in catching:
        warmed_2.warm(bar)
    full = uninterrupted(names, catching)
    assert caught == [s for s in full if s[1] != 2] and any(r == 2 for _, r in full)
    after_mixed = [(s.close_time, s.rule_id) for bar in live for s in mixed.on_bar(bar)]
    after_warmed = [(s.close_time, s.rule_id) for bar in live for s in warmed_2.on_bar(bar)]
    assert [s for s in after_mixed if s[1] == 2] == [s for s in after_warmed if s[1] == 2]


def test_catch_up_ignores_a_bar_already_taken():
    rules = make_rules("level, no cooldown")
    bar = Bar("AAPL", T0, 5, 100, 100, 100, 100, 1)
    rules.warm(bar)
    assert rules.catch_up(bar, {1}) == []
