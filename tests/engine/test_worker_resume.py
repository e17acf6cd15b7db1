"""Catch-up after a crash, end to end: the real worker process against the fake TWS, killed
with SIGKILL twice while bars keep coming; each new worker judges the bars its dead
predecessor missed (they arrive as warm-up history). Stored signals must equal `replay` over
every bar: none lost, none twice."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

import engine.worker.engine as engine_module
from engine.core.bars import Bar
from engine.core.machine import SymbolRules
from engine.core.rules import validate_definition
from engine.feeds.base import BarEvent, StatusEvent
from engine.models import AppSettings, EngineState
from engine.services import settings_get, worker_recover
from engine.worker.config import Overrides
from engine.worker.engine import Engine
from engine.worker.resume import CatchUp, Crash, crash_read
from rules.models import Rule
from rules.services import rule_update
from signals.models import Signal
from signals.services import signal_record
from tests.engine.helpers import (
    Gateway,
    engine_state,
    start_worker,
    stop_worker,
    trend_bars,
    wait_until,
    write_bars,
)
from tests.engine.test_runengine_ib import (
    HISTORY,
    MA_RULE,
    WAIT,
    interleave,
    running,
    sawtooth,
    symbols_script,
)
from tests.engine.test_worker_steps import Recorder, ScriptedFeed, db, wait
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

CROSS_RULE = {
    "logic": "AND", "cooldown_sec": 20, "trigger": "edge",
    "conditions": [{"left": "PRICE", "op": "crosses_above", "right": "MA4"}],
}  # fmt: skip
SYMBOLS = ("AAPL", "MSFT")
LIVE = 190  # live bars per symbol, about 16 minutes, all in the last hour


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def stored() -> list[tuple]:
    return sorted(
        (stamp(int(s.time.timestamp())), s.symbol, s.price, s.rule_id) for s in Signal.objects.all()
    )


def replayed(tmp_path, rules, bars: list[tuple], warm_end: int) -> list[tuple]:
    """`replay` of each rule over every bar, signals after the first worker's warm-up."""
    path = write_bars(tmp_path / "all-bars.csv", interleave(bars))
    out = []
    for rule in rules:
        rule_file = tmp_path / f"rule-{rule.pk}.json"
        rule_file.write_text(json.dumps(rule.to_json()))
        text = StringIO()
        call_command("replay", "--bars", str(path), "--rule", str(rule_file), "--bar-seconds",
                     "5", stdout=text)  # fmt: skip
        for line in text.getvalue().splitlines():
            e = json.loads(line)
            out.append((e["timestamp"], e["symbol"], e["price"], e["rule_id"]))
    return sorted(k for k in out if k[0] > stamp(warm_end))


def push_all(gw: Gateway, rows: list[tuple]) -> int:
    """Push bars (also stored as the gateway's history); how many reached a subscription."""
    delivered = 0
    for t, o, h, low, c, v, symbol in rows:
        delivered += gw.call("push_bar", symbol=symbol, time=t, open=o, high=h, low=low,
                             close=c, volume=v)["delivered"]  # fmt: skip
    return delivered


def processed(rows: list[tuple]) -> None:
    last = max(r[0] for r in rows) + 5
    wait_until(
        lambda: (s := engine_state()) and s.last_bar_time and s.last_bar_time.timestamp() >= last,
        timeout=WAIT, what=f"the worker to process the bar closing at {last}",
    )  # fmt: skip


def live_again(gw: Gateway) -> None:
    wait_until(running, timeout=WAIT, what="running")
    for symbol in SYMBOLS:
        gw.call("wait_subscribed", symbol=symbol, timeout=WAIT)


def worker(tmp_path, gw: Gateway, rules, watchlist, n: int):
    """The n-th worker process, started as a supervisor restarts it (same arguments)."""
    ids = ",".join(str(rule.pk) for rule in rules)
    return start_worker(
        "--feed", "ib", "--rule", ids, "--watchlist", watchlist.name, "--start",
        log_path=tmp_path / f"worker-{n}.log",
        SCALP_IB_HOST="127.0.0.1", SCALP_IB_PORT=str(gw.port), SCALP_IB_CLIENT_ID="17",
    )  # fmt: skip


def kill(proc) -> None:
    proc.kill()  # SIGKILL: no clean-up, the run stays locked in the database
    proc.wait(timeout=10)
    state = EngineState.objects.get(pk=1)
    assert state.run_rule_ids, "a killed worker leaves its run behind"


def test_a_worker_killed_twice_loses_no_signal_and_stores_none_twice(tmp_path):
    start = int(time.time()) // 60 * 60 - LIVE * 5 - 60  # live bars end a minute ago
    history, live = {}, {}
    for n, symbol in enumerate(SYMBOLS):
        rows = trend_bars(symbol, start - HISTORY * 5, sawtooth(HISTORY + LIVE, 190.0 + 220 * n))
        history[symbol], live[symbol] = rows[:HISTORY], rows[HISTORY:]
    gw = Gateway(symbols_script(history), workdir=tmp_path).start()
    rules = [make_rule(name="Fast MA", definition=MA_RULE),
             make_rule(name="Cross MA4", definition=CROSS_RULE)]  # fmt: skip
    watchlist = make_watchlist(name="IB pair", symbols=list(SYMBOLS))
    cursor = 0

    def take(n: int) -> list[tuple]:
        nonlocal cursor
        rows = interleave(*(live[s][cursor : cursor + n] for s in SYMBOLS))
        cursor += n
        return rows

    try:
        proc = worker(tmp_path, gw, rules, watchlist, 1)
        live_again(gw)
        rows = take(40)
        assert push_all(gw, rows) == len(rows)
        processed(rows)
        assert Signal.objects.exists(), "the first run fires"
        kill(proc)
        dead_1 = take(50)  # while no worker runs: only the history holds them
        push_all(gw, dead_1)

        proc = worker(tmp_path, gw, rules, watchlist, 2)
        live_again(gw)
        rows = take(30)
        push_all(gw, rows)
        processed(rows)
        in_flight = take(5)
        push_all(gw, in_flight)  # killed before (or while) it judges them
        kill(proc)
        dead_2 = take(40)
        push_all(gw, dead_2)

        proc = worker(tmp_path, gw, rules, watchlist, 3)
        live_again(gw)
        rows = take(LIVE - cursor)
        assert push_all(gw, rows) == len(rows)
        processed(rows)
        assert stop_worker(proc) == 0, (tmp_path / "worker-3.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        gw.stop()

    all_bars = [r for s in SYMBOLS for r in history[s] + live[s]]
    expected = replayed(tmp_path, rules, all_bars, start)
    got = stored()
    dead = {stamp(r[0] + 5) for r in dead_1 + in_flight + dead_2}
    assert len(expected) >= 20 and {e[3] for e in expected} == {r.pk for r in rules}
    assert len({e for e in expected if e[0] in dead}) >= 6, "the dead stretches must fire"
    assert got == expected, "stored signals and replay disagree"
    assert Signal.objects.count() == len(set(got))
    for n in (2, 3):
        log = (tmp_path / f"worker-{n}.log").read_text()
        assert "Resumed after the worker stopped unexpectedly at " in log, log


# --- the catch-up's rules, in-process (the engine's steps, a scripted feed) -----------------

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC
ABOVE_MA3 = {
    "logic": "AND", "cooldown_sec": 10, "trigger": "level",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA3"}],
}  # fmt: skip
# The dead run warmed 6 bars and judged 9 live (a signal every other bar, the last on bar
# 14, whose cooldown covers bar 15: the first bar to catch up must stay silent).
WARM, JUDGED, HISTORY_BARS, LIVE_BARS = 6, 15, 30, 5
CLOSES = [100 + i * 0.01 for i in range(HISTORY_BARS + LIVE_BARS)]


def bars() -> list[Bar]:
    return [Bar("AAPL", T0 + 5 * i, 5, c, c, c, c, 100) for i, c in enumerate(CLOSES)]


def uninterrupted(rules) -> list[tuple[int, int]]:
    """(close time, rule id) of every signal a run that never stopped fires after its
    warm-up of WARM bars."""
    machine = SymbolRules([validate_definition(r.definition) for r in rules], "AAPL",
                          rule_ids=[r.pk for r in rules])  # fmt: skip
    out = []
    for i, b in enumerate(bars()):
        if i < WARM:
            machine.warm(b)
        else:
            out += [(s.close_time, s.rule_id) for s in machine.on_bar(b)]
    return out


def crashed(rules, watchlist, *, died_ago=30.0, touched=False, desired="running") -> datetime:
    """The database as a worker killed mid-run leaves it: it judged the first JUDGED bars
    (WARM of them warm-up) and stored their signals."""
    for close_time, rule_id in uninterrupted(rules):
        if close_time <= T0 + 5 * JUDGED:
            rule = next(r for r in rules if r.pk == rule_id)
            signal_record(time=datetime.fromtimestamp(close_time, UTC), symbol="AAPL",
                          price=1.0, rule_id=rule_id, rule_name=rule.name, bar_seconds=5,
                          values={})  # fmt: skip
    died = timezone.now() - timedelta(seconds=died_ago)
    # The settings and rules predate the dead run (a change since would stop catch-up).
    settings_get()
    before = died - timedelta(minutes=10)
    AppSettings.objects.filter(pk=1).update(updated_at=before)
    Rule.objects.filter(pk__in=[r.pk for r in rules]).update(updated_at=before)
    EngineState.objects.update_or_create(pk=1)
    EngineState.objects.filter(pk=1).update(
        desired=desired, state="running", heartbeat=died, pid=999_999,
        run_rules=[r.pk for r in rules], run_watchlist=watchlist,
        run_started=died - timedelta(minutes=5),
        symbols={"AAPL": {"contract": None, "last_bar": T0 + 5 * JUDGED}},
        updated_at=died + timedelta(seconds=60 if touched else 0.1),
    )  # fmt: skip
    return died


def restart(
    rules, watchlist, *, history: int = HISTORY_BARS
) -> tuple[list[tuple[int, int]], list[str], ScriptedFeed, dict]:
    """A new worker's first run: ``history`` warm-up bars then the rest live (the first of
    them again first when the history ends before the dead run's last bar, as a feed's
    inbox re-delivers). Returns the stored signals, the status sentences, the feed and the
    engine state's items before the feed's first event."""
    script = [BarEvent(b, warmup=i < history) for i, b in enumerate(bars())]
    if history <= JUDGED:
        script.insert(history, BarEvent(bars()[history - 1]))
    feed = ScriptedFeed([
        StatusEvent("warming_up", "History…"), *script[:history],
        StatusEvent("running", "Receiving bars."), *script[history:],
    ], gated=True)  # fmt: skip
    publisher = Recorder()
    engine = Engine(
        overrides=Overrides(rule_ids=tuple(r.pk for r in rules), watchlist=watchlist.name),
        publisher=publisher,
    )

    async def scenario():
        engine.crash = await db(crash_read)
        await db(worker_recover, pid=os.getpid())
        await engine.start_run()
        items = (await db(engine_state)).symbols
        feed.go()
        await wait(feed.drained.wait(), "the scripted events")
        await engine.stop_run("Stopped.")
        return items

    real = engine_module.make_feed
    engine_module.make_feed = lambda config: feed
    try:
        items = asyncio.run(scenario())
    finally:
        engine_module.make_feed = real
    rows = sorted((int(s.time.timestamp()), s.rule_id) for s in Signal.objects.all())
    return rows, [m for _, m in publisher.statuses()], feed, items


def in_catch_up(rows) -> list[tuple[int, int]]:
    return [r for r in rows if T0 + 5 * JUDGED < r[0] <= T0 + 5 * HISTORY_BARS]


def test_the_first_run_after_a_crash_judges_the_bars_the_dead_run_missed():
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    died = crashed([rule], watchlist)
    rows, sentences, feed, items = restart([rule], watchlist)
    expected = uninterrupted([rule])
    assert in_catch_up(expected), "the dead stretch must fire"
    assert rows == expected  # none lost, none twice; cooldowns as if it never stopped
    caught = len(in_catch_up(expected))
    when = died.astimezone(UTC).strftime("%H:%M:%S UTC")
    resumed = next(s for s in sentences if s.startswith("Resumed after"))
    assert resumed.startswith(f"Resumed after the worker stopped unexpectedly at {when}")
    assert resumed.endswith(f": caught up {HISTORY_BARS - JUDGED} bars, {caught} signals.")
    # The feed was asked for the rules' warm-up plus the dead stretch (an hour at most).
    assert feed.asked[2] == validate_definition(ABOVE_MA3).warmup_bars(5) + 720
    # Killed again before it judged a bar, the next worker would still start from there.
    assert items["AAPL"]["last_bar"] == T0 + 5 * JUDGED


@pytest.mark.parametrize(
    "how",
    ["Stop and Start pressed while it was down", "Stop pressed while it was down",
     "down for over an hour"],
)  # fmt: skip
def test_no_catch_up_when_the_user_stopped_it_or_after_an_hour(how):
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    if how.startswith("Stop and Start"):
        crashed([rule], watchlist, touched=True)
    elif how.startswith("Stop pressed"):
        crashed([rule], watchlist, desired="stopped")
    else:
        crashed([rule], watchlist, died_ago=3601)
    rows, sentences, feed, items = restart([rule], watchlist)
    assert in_catch_up(rows) == [], "no burst of old signals"
    assert in_catch_up(uninterrupted([rule]))
    assert feed.asked[2] == validate_definition(ABOVE_MA3).warmup_bars(5)
    assert items == {}, "no judged points carried over"
    assert not any(s.startswith("Resumed") for s in sentences)
    hour = [s for s in sentences if "over an hour ago" in s]
    if how.startswith("down"):
        assert hour == [hour[0]] and hour[0].endswith(
            " UTC, over an hour ago: bars from while it was down are not replayed."
        )
    else:
        assert hour == []


def test_a_rule_edited_since_the_crash_never_fires_on_old_bars():
    kept = make_rule(name="Above MA3", definition=ABOVE_MA3)
    edited = make_rule(name="Above MA4", definition={**ABOVE_MA3, "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA4"}]})  # fmt: skip
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    crashed([kept, edited], watchlist)
    rule_update(rule=edited, definition={**ABOVE_MA3, "cooldown_sec": 5, "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA4"}]})  # fmt: skip
    rows, sentences, _, _ = restart([kept, edited], watchlist)
    assert in_catch_up([r for r in rows if r[1] == edited.pk]) == []
    assert in_catch_up(rows) == in_catch_up(uninterrupted([kept]))
    resumed = next(s for s in sentences if s.startswith("Resumed after"))
    assert resumed.endswith(
        f"caught up 15 bars, {len(in_catch_up(rows))} signals; rule “Above MA4” starts fresh "
        "(edited since, or new)."
    )


def test_a_catch_up_bar_waits_for_the_warm_up_its_rules_need():
    """History that does not reach back over the whole stretch (over an hour): its first
    bars fill the indicators instead of being judged with half of them undefined."""
    crash = Crash(died=timezone.now(), started=None, rule_ids=frozenset({1}),
                  judged={"AAPL": T0}, desired="running", touched=False)  # fmt: skip
    plan = CatchUp(crash=crash, after={"AAPL": T0}, rule_ids=frozenset({1}), need=3)
    judged = [plan.judges(b) for b in bars()[:6]]
    assert judged == [False, False, False, True, True, True]
    assert plan.judges(Bar("MSFT", T0, 5, 1, 1, 1, 1, 1)) is False  # not in the dead run
    assert plan.warmed == {"AAPL": 3}


def test_history_ending_before_the_dead_runs_last_bar_still_restores_its_cooldowns():
    """No warm-up bar to catch up, and the first live bar a re-delivered one: the rules
    still take the dead run's signals up to the last bar taken in."""
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    crashed([rule], watchlist)
    rows, sentences, _, _ = restart([rule], watchlist, history=JUDGED)
    assert rows == uninterrupted([rule])
    assert any(s.endswith(": caught up 0 bars, 0 signals.") for s in sentences)


def test_after_the_catch_up_stop_and_start_bring_no_old_signals():
    """Only the first run after the crash catches up: Stop, then Start in the same worker,
    warms up only, even on history the catch-up judged."""
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    crashed([rule], watchlist)
    history = [BarEvent(b, warmup=True) for b in bars()[:HISTORY_BARS]]
    feeds = [ScriptedFeed(history), ScriptedFeed(history)]
    made = list(feeds)
    engine = Engine(overrides=Overrides(rule_ids=(rule.pk,), watchlist=watchlist.name),
                    publisher=Recorder())  # fmt: skip
    caught: list[int] = []

    async def scenario():
        engine.crash = await db(crash_read)
        await db(worker_recover, pid=os.getpid())
        for feed in feeds:
            await engine.start_run()
            await wait(feed.drained.wait(), "the scripted events")
            await engine.stop_run("Stopped.")
            caught.append(await db(Signal.objects.count))
            # As if those signals had never been stored: the second run must not store them.
            await db(Signal.objects.filter(time__gt=utc(T0 + 5 * JUDGED)).delete)

    real = engine_module.make_feed
    engine_module.make_feed = lambda config: made.pop(0)
    try:
        asyncio.run(scenario())
    finally:
        engine_module.make_feed = real
    stored_before = len([s for s in uninterrupted([rule]) if s[0] <= T0 + 5 * JUDGED])
    assert caught[0] > stored_before and caught[1] == stored_before
    need = validate_definition(ABOVE_MA3).warmup_bars(5)
    assert [feed.asked[2] for feed in feeds] == [need + 720, need]


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
