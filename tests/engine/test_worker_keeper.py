"""What the worker keeps (DESIGN §7.3, ``engine/worker/keeper.py``): the IB warm-up starts
from the bar store and asks the feed only for the gap; signals whose horizons a stopped
worker never saw get their outcomes at the next start, from the store and the new bars; the
store is pruned to the retention setting once a day. In-process, with a scripted feed and
the real SQLite file."""

from __future__ import annotations

import asyncio
import time

import pytest

import engine.worker.engine as worker
from bars.models import StoredBar
from bars.services import bars_store
from engine.core.bars import Bar
from engine.core.machine import SymbolRules
from engine.core.outcomes import outcome_of
from engine.core.rules import validate_definition
from engine.feeds.base import BarEvent, StatusEvent
from engine.services import engine_request, settings_update
from engine.worker.config import Overrides
from engine.worker.engine import Engine
from signals.models import Outcome, Signal
from tests.engine.test_worker_steps import Feeds, Recorder, ScriptedFeed, db, until
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_BAR = {
    "logic": "AND", "cooldown_sec": 0,
    "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
}  # fmt: skip
MA_RULE = {
    "logic": "AND", "cooldown_sec": 20,
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                   {"left": "MA5", "op": ">", "right": "MA20"}],
}  # fmt: skip


@pytest.fixture
def feeds(monkeypatch) -> Feeds:
    made = Feeds()
    monkeypatch.setattr(worker, "make_feed", made)
    return made


def now_bar() -> int:
    return int(time.time()) // 5 * 5


def wave(symbol: str, start: int, n: int, base: float = 100.0) -> list[Bar]:
    """5-second bars: up 12, down 8, repeated (the MA rule fires on the rises)."""
    out, price = [], base
    for i in range(n):
        price = round(price + (0.05 if i % 20 < 12 else -0.06), 2)
        out.append(Bar(symbol, start + 5 * i, 5, price, price + 0.03, price - 0.04, price, 10 + i))
    return out


async def run_once(engine: Engine, feed: ScriptedFeed, publisher: Recorder) -> None:
    await db(engine_request, desired="running")
    await engine.tick()
    await until(lambda: feed.drained.is_set(), "the scripted bars")
    await engine.stop_run("Stopped.")


def test_ib_warm_up_reads_the_store_and_asks_the_feed_only_for_the_gap(feeds):
    rule = make_rule(name="MA", definition=MA_RULE)
    make_watchlist(name="IB", symbols=["AAPL"])
    start = now_bar() - 5 * 300
    history = wave("AAPL", start, 290)  # stored by an earlier run; ends 50 s ago
    bars_store(history)
    gap = wave("AAPL", start, 300)[290:]  # what the feed's warm-up sends: the gap
    live = wave("AAPL", start, 340)[300:]
    feed = ScriptedFeed(
        [BarEvent(b, warmup=True) for b in history[-3:] + gap]  # a little overlap, as IB
        + [StatusEvent("running", "Receiving bars.")]
        + [BarEvent(b) for b in live]
    )
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(
        overrides=Overrides(feed="ib", rule_ids=(rule.pk,), watchlist="IB"), publisher=publisher
    )
    asyncio.run(run_once(engine, feed, publisher))

    need = validate_definition(MA_RULE).warmup_bars(5)
    symbols, bar_seconds, asked = feed.asked
    # the gap (≈ 10 bars from the last stored bar's close to now) and 2 of overlap
    assert asked < need and 10 <= asked <= 14, (asked, need)
    # signals equal a machine that saw every bar, the stored ones as warm-up
    book = SymbolRules([validate_definition(MA_RULE)], "AAPL")
    for b in history + gap:
        book.warm(b)
    expected = [s.close_time for b in live for s in book.on_bar(b)]
    stored = [int(s.time.timestamp()) for s in Signal.objects.order_by("time")]
    assert stored == expected and len(expected) >= 2
    # and every bar is stored once, with the 1-minute bars built from the run's
    assert StoredBar.objects.filter(seconds=5).count() == 340
    assert StoredBar.objects.filter(seconds=60).exists()


def test_a_crashed_or_stopped_worker_s_open_outcomes_are_finished_at_the_next_start(feeds):
    rule = make_rule(name="Every bar", definition={**EVERY_BAR, "cooldown_sec": 3600})
    make_watchlist(name="Demo", symbols=["AAPL"])
    start = now_bar() - 5 * 400
    bars = wave("AAPL", start, 400)
    # run 1: takes 10 bars, fires once on the first, stops before any horizon passed
    first = ScriptedFeed([BarEvent(b) for b in bars[:10]])
    # the store meanwhile got bars through 170 s after the signal (a backtest's download)
    bars_store(bars[10:35])
    # run 2: the rest of the bars, live
    second = ScriptedFeed([BarEvent(b) for b in bars[35:]])
    feeds.queue += [first, second]
    overrides = Overrides(feed="demo", rule_ids=(rule.pk,), watchlist="Demo")
    one = Recorder()
    asyncio.run(run_once(Engine(overrides=overrides, publisher=one), first, one))
    signal = Signal.objects.get()
    assert not Outcome.objects.exists()
    assert not [e for e in one.events if e["event"] == "outcome"]

    two = Recorder()
    asyncio.run(run_once(Engine(overrides=overrides, publisher=two), second, two))
    # run 2's fresh machine fires on its first bar too (a new run knows no cooldown)
    assert Signal.objects.count() == 2
    seen = [(b.close_time, b.high, b.low, b.close) for b in bars]
    for sig in Signal.objects.all():
        outs = {o.horizon: o for o in sig.outcomes.all()}
        assert sorted(outs) == [60, 300, 900]
        t = int(sig.time.timestamp())
        for horizon, out in outs.items():
            want = outcome_of(sig.price, None, t, horizon, seen)
            assert (out.return_pct, out.mfe_pct, out.mae_pct) == (
                want.return_pct, want.mfe_pct, want.mae_pct,
            )  # fmt: skip
    published = [e for e in two.events if e["event"] == "outcome" and e["id"] == signal.id]
    assert [e["horizon"] for e in published] == ["1m", "5m", "15m"]
    assert all(e["symbol"] == "AAPL" for e in published)
    # the first signal's 1m outcome came from the store at start, with run 2's first bar
    first_bar = next(i for i, e in enumerate(two.events) if e["event"] == "bar")
    assert two.events.index(published[0]) < first_bar
    assert len([e for e in two.events if e["event"] == "outcome"]) == 6


def test_the_store_is_pruned_to_the_retention_setting_once_a_day():
    settings_update(bar_retention_days=7)
    now = now_bar()
    old = wave("AAPL", now - 8 * 86400, 10)
    recent = wave("AAPL", now - 6 * 86400, 10)
    bars_store(old + recent)
    engine = Engine(publisher=Recorder())

    def old_count() -> int:
        return StoredBar.objects.filter(time__lt=now - 7 * 86400).count()

    async def ticks():
        await engine.tick()
        after_first = await db(old_count)
        await db(bars_store, old)  # back again: not pruned before a day has passed
        await engine.tick()
        return after_first

    assert asyncio.run(ticks()) == 0
    assert StoredBar.objects.filter(time__gte=now - 7 * 86400).count() == 10
    assert StoredBar.objects.filter(time__lt=now - 7 * 86400).count() == 10
