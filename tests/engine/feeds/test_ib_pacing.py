"""The IB feed's history pacer keeps IB's three pacing rules for historical data.

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import pytest

from engine.feeds.ib.pacing import (
    MARGIN,
    WARMUP_REQUESTS,
    WINDOW_MAX,
    HistoryPacer,
    warmup_budget,
)

pytestmark = pytest.mark.insync


def test_the_pacer_keeps_ibs_three_rules():
    now = [1000.0]
    pacer = HistoryPacer(clock=lambda: now[0])
    assert pacer.delay("a", 1) == 0
    pacer.record("a", 1)
    # An identical request waits 15 s (and a margin), another one goes at once.
    assert pacer.delay("a", 1) == pytest.approx(15 + MARGIN)
    assert pacer.delay("b", 1) == 0
    for key in "bcde":
        pacer.record(key, 1)
    # Five requests for contract 1 just now: a sixth waits until the first is 2 s old.
    assert pacer.delay("f", 1) == pytest.approx(2 + MARGIN)
    assert pacer.delay("f", 2) == 0
    now[0] += 2 + MARGIN + 0.1
    assert pacer.delay("f", 1) == 0
    # Sixty requests in ten minutes: the 61st waits until the first is ten minutes old.
    for i in range(55):
        now[0] += 1.0
        pacer.record(("g", i), 3 + i)
    assert pacer.recent() == 60
    assert pacer.delay("h", 99) == pytest.approx(1000.0 + 600 + MARGIN - now[0])
    now[0] = 1000.0 + 600 + MARGIN + 0.1
    assert pacer.delay("h", 99) == 0
    assert pacer.recent() == 55  # the first five, sent at the same time, are gone


def test_after_a_pacing_refusal_every_request_waits():
    now = [1000.0]
    pacer = HistoryPacer(clock=lambda: now[0])
    pacer.record("a", 1)
    pacer.hold(15)
    assert pacer.delay("b", 2) == pytest.approx(15)  # another contract, another request
    pacer.hold(5)  # a shorter hold never shortens the longer one
    assert pacer.delay("b", 2) == pytest.approx(15)
    now[0] += 15
    assert pacer.delay("b", 2) == 0
    assert pacer.delay("a", 1) == pytest.approx(MARGIN)  # still IB's 15 s for the same one


def test_the_warm_up_leaves_room_for_backfills():
    assert [warmup_budget(n) for n in range(1, 6)] == [45, 22, 15, 11, 9]
    assert all(warmup_budget(n) * n <= WARMUP_REQUESTS < WINDOW_MAX for n in range(1, 6))
    # After a connection lost in the middle of a warm-up: what is left, at least one each.
    assert [warmup_budget(5, used=u) for u in (0, 20, 44, 60)] == [9, 5, 1, 1]
