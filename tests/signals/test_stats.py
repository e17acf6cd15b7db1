"""signals/stats.py: per rule and rule × symbol figures from stored outcomes equal
``engine.core.stats`` fed the same outcomes; one query; periods; the distribution chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engine.core.outcomes import Outcome as CoreOutcome
from engine.core.stats import HorizonStats
from signals.models import Signal
from signals.services import outcomes_record, signal_record
from signals.stats import (
    distribution_chart,
    outcome_stats,
    period_clean,
    period_signals,
    period_start,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 12, 16, 15, 0, tzinfo=UTC)
H = (60, 300)

# (rule, symbol, age in minutes, {horizon: (return, mfe, mae)}) — a 5m outcome missing means
# not final yet; None values mean a closed market (final, no bar).
DATA = [
    (1, "AAPL", 5, {60: (0.2, 0.3, -0.1), 300: (0.5, 0.6, -0.2)}),
    (1, "AAPL", 15, {60: (-0.1, 0.05, -0.2), 300: (-0.3, 0.1, -0.4)}),
    (1, "MSFT", 25, {60: (0.0, 0.1, -0.1), 300: (None, None, None)}),
    (1, "MSFT", 35, {60: (1.5, 1.6, 0.0)}),
    (2, "AAPL", 45, {60: (-0.7, 0.0, -0.9), 300: (-2.0, 0.0, -2.5)}),
    (2, "AAPL", 60 * 24 * 3, {60: (0.4, 0.5, 0.0)}),  # three days old
    (2, "AAPL", 50, {}),  # no outcome yet
]


def store():
    for n, (rule_id, symbol, age, outs) in enumerate(DATA):
        signal = signal_record(
            time=NOW - timedelta(minutes=age), symbol=symbol, price=100 + n, rule_id=rule_id,
            rule_name=f"Rule {rule_id}", bar_seconds=5, values={},
        )  # fmt: skip
        outcomes_record([(signal.id, CoreOutcome(h, *v)) for h, v in outs.items()])


def expected(rows) -> dict[int, dict]:
    per = {h: HorizonStats(h) for h in H}
    for _, _, _, outs in rows:
        for h, values in outs.items():
            per[h].add_values(*values)
    return {h: per[h].to_json() for h in H}


def test_figures_per_rule_and_symbol_equal_the_core_stats():
    store()
    with CaptureQueriesContext(connection) as queries:
        table = outcome_stats(Signal.objects.all(), H)
    assert len(queries) == 1
    rows = {row["rule_id"]: row for row in table.rows()}
    for rule_id in (1, 2):
        mine = [d for d in DATA if d[0] == rule_id]
        assert rows[rule_id]["signals"] == len(mine)
        assert rows[rule_id]["label"] == f"Rule {rule_id} #{rule_id}"
        got = {h["horizon"]: h for h in rows[rule_id]["horizons"]}
        assert got == {v["horizon"]: v for v in expected(mine).values()}
        for sym in rows[rule_id]["symbols"]:
            pair = [d for d in mine if d[1] == sym["symbol"]]
            assert sym["signals"] == len(pair)
            assert sym["horizons"] == list(expected(pair).values())
    one = rows[1]["horizons"][0]  # rule 1 at 1m: returns 0.2, -0.1, 0.0, 1.5
    assert (one["count"], one["hits"], one["hit_rate"]) == (4, 2, 0.5)
    assert one["mean_return_pct"] == 0.4 and one["median_return_pct"] == 0.1
    five = rows[1]["horizons"][1]  # the closed market's null outcome is not counted
    assert (five["count"], five["hit_rate"]) == (2, 0.5)
    assert table.first(2) == {"signals": 3, **expected([d for d in DATA if d[0] == 2])[60]}
    assert table.first(99) is None


def test_periods_and_a_filtered_queryset():
    store()
    assert period_start("today", NOW) == datetime(2025, 12, 16, tzinfo=UTC)
    assert period_start("7d", NOW) == NOW - timedelta(days=7)
    assert period_start("all", NOW) is None
    assert [period_clean(raw) for raw in ("today", "all", "", "7D", "x\x00", None, 5)] == [
        "today", "all", "30d", "30d", "30d", "30d", "30d",
    ]  # fmt: skip
    today = outcome_stats(period_signals("today", NOW, rule_id=2), H)
    assert [row["signals"] for row in today.rows()] == [2]  # the 3-day-old one is out
    assert today.rows()[0]["horizons"][0]["count"] == 1
    week = outcome_stats(period_signals("7d", NOW, rule_id=2), H)
    assert week.rows()[0]["signals"] == 3
    empty = outcome_stats(Signal.objects.none(), H)
    assert empty.rows() == [] and empty.charts()[0]["count"] == 0


def test_distribution_chart_bars_follow_the_core_distribution():
    stats = HorizonStats(60)
    for value in (-2.0, -0.3, -0.3, 0.0, 0.07, 3.0):
        stats.add_values(value, 0.0, 0.0)
    chart = distribution_chart(stats)
    counts = [bar["count"] for bar in chart["bars"]]
    assert counts == stats.distribution() and sum(counts) == 6
    assert chart["width"] == 12 * 14 and chart["zero_x"] == 6 * 14 - 1
    tallest = max(chart["bars"], key=lambda bar: bar["count"])
    assert (tallest["h"], tallest["y"], tallest["label"]) == (40, 0, "−0.5% to −0.2%")
    assert chart["bars"][0]["label"] == "below −1%" and chart["bars"][0]["negative"]
    assert chart["bars"][-1]["label"] == "+1% or more" and not chart["bars"][-1]["negative"]
    assert chart["bars"][6]["label"] == "0% to +0.05%" and not chart["bars"][6]["negative"]
    assert chart["bars"][5]["negative"] and chart["bars"][5]["count"] == 0
