"""The engine worker's steps in-process: tick, start_run, on_bar, consume, stop_run, end_run,
fail and main's recovery, on the real SQLite test database, with the csv feed (speed 0: no
waiting) or a scripted feed, and a MemoryPublisher that keeps every event in order.

The real worker process (SIGTERM, kill -9, the runengine arguments) is tested in
``test_worker.py``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.utils import timezone

import engine.worker.engine as worker
from bars.models import StoredBar
from engine.core.bars import Bar, parse_time
from engine.core.outcomes import outcome_of
from engine.core.rules import timeframe_problem, validate_definition
from engine.feeds.base import BarEvent, Feed, StatusEvent
from engine.models import EngineState
from engine.services import engine_request, engine_state_get
from engine.worker.config import Overrides, load_run_config
from engine.worker.engine import Engine, Run
from engine.worker.publish import MemoryPublisher
from rules.models import Rule
from rules.services import rule_update, rules_activate, rules_deactivate
from signals.models import Outcome, Signal
from tests.engine.helpers import (
    engine_state,
    replay_events,
    sawtooth_bar_file,
    write_bars,
    zigzag_rows,
)
from tests.factories import make_rule, make_running_engine, make_watchlist
from watchlists.models import Watchlist
from watchlists.services import watchlist_remove_symbol

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC, a Tuesday at the NYSE open
WAIT = 30.0  # upper bound for any one wait; a passing test never comes near it
DEFAULT_SYMBOLS = "AAPL MSFT NVDA SPY TSLA"  # the seeded active watchlist "Default"
RECOVERED = "Recovered from a worker that stopped without cleaning up; its locks are released."

ABOVE_MA3 = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA3"}],
    "cooldown_sec": 10,
    "trigger": "level",
}
FAST = {
    "logic": "AND",
    "cooldown_sec": 30,
    "trigger": "level",
    "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA5"},
        {"left": "MA5", "op": ">", "right": "MA10"},
    ],
}


# --- helpers -------------------------------------------------------------------------------


async def db(fn: Callable, *args, **kwargs):
    """Run a database function from the event loop, as the worker does."""
    return await sync_to_async(fn)(*args, **kwargs)


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def bar(symbol: str, i: int, close: float) -> Bar:
    """The ``i``-th 5-second bar from T0, with distinct open, high, low and volume."""
    return Bar(symbol, T0 + 5 * i, 5, close - 0.5, close + 0.25, close - 1, close, 100 + i)


class Recorder(MemoryPublisher):
    """A MemoryPublisher a test can wait on; remembers whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._changed is None:
            self._loop, self._changed = loop, asyncio.Event()
        return self._changed

    async def publish(self, event) -> None:
        await super().publish(event)
        self._event().set()

    async def close(self) -> None:
        self.closed = True

    async def wait_for(self, predicate: Callable[[], object], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not predicate():
                    changed = self._event()
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}; statuses: {statuses(self)}"
            ) from None

    def statuses(self) -> list[tuple[str, str]]:
        return statuses(self)


def statuses(publisher: MemoryPublisher) -> list[tuple[str, str]]:
    return [(e["state"], e["message"]) for e in publisher.events if e["event"] == "status"]


def kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


class ScriptedFeed(Feed):
    """Yields its script, then stays open until closed (as a live feed does) or, with
    ``end=True``, ends. ``gated``: waits for :meth:`go` (or close) before its first event."""

    name = "scripted"

    def __init__(self, script=(), *, end: bool = False, gated: bool = False) -> None:
        self.script = list(script)
        self.end = end
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.closed = asyncio.Event()
        self.drained = asyncio.Event()  # every scripted event was handled by the engine
        self.asked: tuple | None = None

    def go(self) -> None:
        self.gate.set()

    async def events(self, symbols, *, bar_seconds, warmup_bars):
        self.asked = (tuple(symbols), bar_seconds, warmup_bars)
        await self.gate.wait()
        for event in self.script:
            if self.closed.is_set():
                return
            yield event
        self.drained.set()
        if not self.end:
            await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()
        self.gate.set()


class Feeds:
    """Stands in for ``make_feed``: hands out the queued feeds in order, keeps the configs."""

    def __init__(self) -> None:
        self.queue: list[Feed] = []
        self.configs: list = []

    def __call__(self, config):
        self.configs.append(config)
        return self.queue.pop(0)


@pytest.fixture
def feeds(monkeypatch) -> Feeds:
    made = Feeds()
    monkeypatch.setattr(worker, "make_feed", made)
    return made


@pytest.fixture
def made_feeds(monkeypatch) -> list:
    """The real ``make_feed``, recording the configs it was called with."""
    real, configs = worker.make_feed, []

    def recording(config):
        configs.append(config)
        return real(config)

    monkeypatch.setattr(worker, "make_feed", recording)
    return configs


async def until(predicate: Callable[[], object], what: str) -> object:
    """Poll a database ``predicate`` (run in Django's sync thread) until it is truthy: for
    the worker's writes that publish nothing (main's recovery), the row is all there is."""
    try:
        async with asyncio.timeout(WAIT):
            # A database row, not an Event:
            while not (result := await db(predicate)):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return result


async def wait(awaitable, what: str):
    try:
        return await asyncio.wait_for(awaitable, WAIT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def this_worker_state() -> EngineState | None:
    """The engine state once this process's worker wrote its pid (main's first step)."""
    state = engine_state()
    return state if state is not None and state.pid == os.getpid() else None


def system_rule() -> Rule:
    return Rule.objects.get(is_system=True)


def default_watchlist() -> Watchlist:
    return Watchlist.objects.get(name="Default")


def starting(
    rule: str | tuple[str, ...] = "MA Momentum", where: str = DEFAULT_SYMBOLS, feed: str = "demo"
) -> str:
    """The start sentence for one rule (a name) or several (a tuple of names)."""
    if isinstance(rule, tuple):
        names = "rules " + ", ".join(f"“{name}”" for name in rule)
    else:
        names = f"rule “{rule}”"
    return f"Starting: {names} on {where} (5 s bars, {feed} feed)."


# --- tick ----------------------------------------------------------------------------------


def test_tick_starts_a_run_when_running_is_desired_and_stops_it_when_stopped(feeds):
    old = timezone.now() - timedelta(seconds=60)
    engine_state_get()
    EngineState.objects.filter(pk=1).update(heartbeat=old)
    engine_request(desired="running")
    live = [bar("AAPL", 0, 190.0), bar("MSFT", 0, 410.0), bar("AAPL", 1, 190.5)]
    feed = ScriptedFeed([StatusEvent("running", "Scripted bars."), *map(BarEvent, live)])
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        await engine.tick()
        run = engine.run
        assert run is not None and run.task is not None
        started = await db(engine_state)
        await wait(feed.drained.wait(), "the scripted bars")
        before_tick = await db(engine_state)
        await engine.tick()  # desired still running: the heartbeat, with the last bar's time
        during = await db(engine_state)
        assert engine.run is run, "a tick must not restart a live run"
        await db(engine_request, desired="stopped")
        await engine.tick()
        return run, started, before_tick, during

    run, started, before_tick, during = asyncio.run(scenario())
    assert started.heartbeat > old
    assert (started.state, started.message) == ("connecting", starting())
    assert started.run_rule_ids == [system_rule().pk]
    assert started.run_watchlist_id == default_watchlist().pk
    assert started.run_started is not None and started.is_locked
    assert feeds.configs[0].symbols == tuple(DEFAULT_SYMBOLS.split())
    assert feed.asked == (tuple(DEFAULT_SYMBOLS.split()), 5, 11)
    assert before_tick.last_bar_time is None, "only the tick writes the last bar's time"
    assert during.last_bar_time == utc(T0 + 10) and during.heartbeat > started.heartbeat
    assert (run.bars, run.last_bar_time) == (3, T0 + 10)
    assert engine.run is None and feed.closed.is_set() and run.task.done()
    assert publisher.statuses() == [
        ("connecting", starting()),
        ("running", "Scripted bars."),
        ("stopping", "Stopping…"),
        ("idle", "Stopped."),
    ]
    assert kinds(publisher.events)[2:5] == ["bar", "bar", "bar"]
    state = engine_state()
    assert (state.state, state.message, state.desired) == ("idle", "Stopped.", "stopped")
    assert state.run_rule_ids == [] and state.run_watchlist_id is None
    assert state.run_started is None and not state.is_locked


def test_tick_with_stopped_desired_and_no_run_only_writes_the_heartbeat(made_feeds):
    old = timezone.now() - timedelta(seconds=60)
    engine_state_get()
    EngineState.objects.filter(pk=1).update(heartbeat=old, state="idle", message="Ready.")
    publisher = Recorder()
    engine = Engine(publisher=publisher)
    asyncio.run(engine.tick())
    state = engine_state()
    assert state.heartbeat > old and (state.state, state.message) == ("idle", "Ready.")
    assert engine.run is None and made_feeds == [] and publisher.events == []


def test_reload_stops_the_run_and_starts_it_again_with_the_new_rules(feeds):
    second = make_rule(name="Second")
    engine_request(desired="running")
    first_feed, second_feed = ScriptedFeed(), ScriptedFeed()
    feeds.queue += [first_feed, second_feed]
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        await engine.tick()
        first = engine.run
        # The pages refuse changing the active rules while a run holds them; the rows change
        # under the worker as an admin's script would do it.
        await db(lambda: Rule.objects.filter(pk=second.pk).update(is_active=True))
        engine.on_command("reload")
        assert engine.wake.is_set(), "a command wakes the worker at once"
        await engine.tick()
        second_run = engine.run
        state = await db(engine_state)
        await engine.stop_run("Stopped.")
        return first, second_run, state

    first, second_run, state = asyncio.run(scenario())
    assert first is not second_run and first.task.done() and first_feed.closed.is_set()
    assert [c.rule_ids for c in feeds.configs] == [
        [system_rule().pk],
        [system_rule().pk, second.pk],
    ]
    assert [r.name for r in second_run.config.rules] == ["MA Momentum", "Second"]
    assert state.run_rule_ids == [system_rule().pk, second.pk] and state.state == "connecting"
    assert publisher.statuses() == [
        ("connecting", starting()),
        ("stopping", "Stopping…"),
        ("idle", "Reloading the rules and watchlist…"),
        ("connecting", starting(("MA Momentum", "Second"))),
        ("stopping", "Stopping…"),
        ("idle", "Stopped."),
    ]
    assert engine.reload_requested is False


# --- start_run -----------------------------------------------------------------------------


def test_start_run_with_a_good_config_says_what_it_runs_and_locks_rule_and_watchlist(feeds):
    rule = make_rule(name="Mine")
    watchlist = make_watchlist(name="Pair", symbols=["AAPL", "MSFT"])
    feed = ScriptedFeed([StatusEvent("connecting", "Connecting to the scripted feed…")], gated=True)
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(overrides=Overrides(rule_ids=(rule.pk,), watchlist="Pair"), publisher=publisher)

    async def scenario():
        await engine.start_run()
        state = await db(engine_state)  # the feed has not said anything yet (gated)
        feed.go()
        await wait(feed.drained.wait(), "the feed's first status")
        await engine.stop_run("Stopped.")
        return state

    state = asyncio.run(scenario())
    message = starting("Mine", "AAPL MSFT")
    assert (state.state, state.message) == ("connecting", message)
    assert (state.run_rule_ids, state.run_watchlist_id) == ([rule.pk], watchlist.pk)
    assert state.run_started is not None and state.last_bar_time is None and state.is_locked
    assert publisher.statuses() == [
        ("connecting", message),
        ("connecting", "Connecting to the scripted feed…"),
        ("stopping", "Stopping…"),
        ("idle", "Stopped."),
    ]


def _no_active_rule(tmp_path) -> tuple[Overrides, str]:
    rules_deactivate()
    return Overrides(feed="demo"), "No active rule: activate at least one before starting."


def _empty_watchlist(tmp_path) -> tuple[Overrides, str]:
    make_watchlist(name="Empty", symbols=[])
    return (
        Overrides(feed="demo", watchlist="Empty"),
        "The watchlist “Empty” has no symbols: add up to 5.",
    )


def _empty_active_watchlist(tmp_path) -> tuple[Overrides, str]:
    make_watchlist(name="Nothing yet", symbols=[], activate=True)
    return Overrides(feed="ib"), "The watchlist “Nothing yet” has no symbols: add up to 5."


def _missing_csv(tmp_path) -> tuple[Overrides, str]:
    path = tmp_path / "gone.csv"
    return Overrides(feed="csv", csv_path=str(path)), f"The CSV file {path} does not exist."


@pytest.mark.parametrize(
    "setup", [_no_active_rule, _empty_watchlist, _empty_active_watchlist, _missing_csv]
)
def test_a_run_that_cannot_start_says_why_locks_nothing_and_does_not_retry(
    setup, tmp_path, made_feeds
):
    overrides, sentence = setup(tmp_path)
    engine_request(desired="running")
    publisher = Recorder()
    engine = Engine(overrides=overrides, publisher=publisher)

    async def scenario():
        await engine.tick()
        failed = await db(engine_state)
        await engine.tick()  # desired is "stopped" now: no second attempt
        await engine.tick()
        return failed

    failed = asyncio.run(scenario())
    assert (failed.state, failed.message, failed.desired) == ("error", sentence, "stopped")
    assert failed.run_rule_ids == [] and failed.run_watchlist_id is None
    assert failed.run_started is None and not failed.is_locked
    assert engine.run is None and made_feeds == []
    assert publisher.statuses() == [("error", sentence)] and len(publisher.events) == 1
    later = engine_state()
    assert (later.state, later.message, later.desired) == ("error", sentence, "stopped")
    assert later.heartbeat >= failed.heartbeat


# --- on_bar --------------------------------------------------------------------------------


def test_on_bar_warm_up_bars_fill_the_indicators_but_never_emit():
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        config = await db(load_run_config, Overrides(rule_ids=(rule.pk,), feed="demo"))
        warm, live = Run(config=config, feed=ScriptedFeed()), Run(config, ScriptedFeed())
        rising = [100.0, 101.0, 102.0]  # the third bar is above MA3: live, it fires
        for i, close in enumerate(rising):
            await engine.on_bar(warm, bar("AAPL", i, close), warmup=True)
        after_warm_up = (list(publisher.events), await db(Signal.objects.count))
        for i, close in enumerate(rising):
            await engine.on_bar(live, bar("MSFT", i, close), warmup=False)
        return warm, live, after_warm_up

    warm, live, (events, rows) = asyncio.run(scenario())
    assert events == [] and rows == 0
    assert (warm.bars, warm.signals, warm.last_bar_time) == (0, 0, None)
    # The same bars live: three bar events and a signal on the third.
    assert kinds(publisher.events) == ["bar", "bar", "signal", "bar"]
    assert [(s.symbol, s.time) for s in Signal.objects.all()] == [("MSFT", utc(T0 + 15))]
    assert (live.bars, live.signals, live.last_bar_time) == (3, 1, T0 + 15)
    # The warmed machine's MA3 is defined: its next live bar is compared at once.
    assert warm.machine("AAPL").last_values() == {"PRICE": 102.0, "MA3": 101.0}


def test_on_bar_stores_the_signal_first_then_publishes_it_before_its_bar():
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    publisher = Recorder()
    engine = Engine(publisher=publisher)
    stored_at_publish: list[int] = []

    async def scenario():
        config = await db(load_run_config, Overrides(rule_ids=(rule.pk,), feed="demo"))
        run = Run(config=config, feed=ScriptedFeed())
        for i, close in enumerate([100.0, 101.0, 102.0]):
            await engine.on_bar(run, bar("AAPL", i, close), warmup=True)
        await engine.on_bar(run, bar("AAPL", 3, 100.0), warmup=False)  # MA3 101: no signal
        await engine.on_bar(run, bar("AAPL", 4, 104.0), warmup=False)  # MA3 102: fires
        stored_at_publish.append(await db(Signal.objects.count))
        await engine.on_bar(run, bar("AAPL", 5, 105.0), warmup=False)  # in cooldown
        return run

    run = asyncio.run(scenario())
    row = Signal.objects.get()
    assert stored_at_publish == [1]
    assert (row.symbol, row.time, row.price, row.rule_id, row.rule_name, row.bar_seconds) == (
        "AAPL", utc(T0 + 25), 104.0, rule.pk, "Above MA3", 5,
    )  # fmt: skip
    assert row.values == {"PRICE": 104.0, "MA3": 102.0}
    assert publisher.events == [
        {"event": "bar", "symbol": "AAPL", "time": "2025-12-16T14:30:15Z", "open": 99.5,
         "high": 100.25, "low": 99.0, "close": 100.0, "volume": 103,
         "values": {"PRICE": 100.0, "MA3": 101.0}, "state": "WAIT", "cooldown_until": None,
         "rules": [{"rule_id": rule.pk, "state": "WAIT", "cooldown_until": None}],
         "contract": None},
        {"event": "signal", "symbol": "AAPL", "price": 104.0, "rule_id": rule.pk,
         "timestamp": "2025-12-16T14:30:25Z", "id": row.id, "rule_name": "Above MA3",
         "bar_seconds": 5, "values": {"PRICE": 104.0, "MA3": 102.0}, "side": None,
         "contract": None},
        {"event": "bar", "symbol": "AAPL", "time": "2025-12-16T14:30:20Z", "open": 103.5,
         "high": 104.25, "low": 103.0, "close": 104.0, "volume": 104,
         "values": {"PRICE": 104.0, "MA3": 102.0}, "state": "COOLDOWN",
         "cooldown_until": "2025-12-16T14:30:35Z",
         "rules": [{"rule_id": rule.pk, "state": "COOLDOWN",
                    "cooldown_until": "2025-12-16T14:30:35Z"}], "contract": None},
        {"event": "bar", "symbol": "AAPL", "time": "2025-12-16T14:30:25Z", "open": 104.5,
         "high": 105.25, "low": 104.0, "close": 105.0, "volume": 105,
         "values": {"PRICE": 105.0, "MA3": 103.0}, "state": "COOLDOWN",
         "cooldown_until": "2025-12-16T14:30:35Z",
         "rules": [{"rule_id": rule.pk, "state": "COOLDOWN",
                    "cooldown_until": "2025-12-16T14:30:35Z"}], "contract": None},
    ]  # fmt: skip
    assert publisher.events[1] == row.to_event()
    assert (run.bars, run.signals, run.last_bar_time) == (3, 1, T0 + 30)


def test_on_bar_a_redelivered_bar_stores_nothing_and_publishes_no_second_signal():
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    publisher = Recorder()
    engine = Engine(publisher=publisher)
    warm_up = [bar("AAPL", i, close) for i, close in enumerate([100.0, 101.0, 102.0])]
    firing = bar("AAPL", 3, 104.0)
    marks: list[int] = []

    async def scenario():
        config = await db(load_run_config, Overrides(rule_ids=(rule.pk,), feed="demo"))
        run = Run(config=config, feed=ScriptedFeed())
        for b in warm_up:
            await engine.on_bar(run, b, warmup=True)
        await engine.on_bar(run, firing, warmup=False)
        marks.append(len(publisher.events))
        await engine.on_bar(run, firing, warmup=False)  # re-delivered after a reconnect
        marks.append(len(publisher.events))
        # A new run (restart, reload) over the same bars: a fresh machine fires again, the
        # database already holds that (rule, symbol, bar) signal.
        again = Run(config=config, feed=ScriptedFeed())
        for b in warm_up:
            await engine.on_bar(again, b, warmup=True)
        await engine.on_bar(again, firing, warmup=False)
        return run, again

    run, again = asyncio.run(scenario())
    row = Signal.objects.get()
    first, redelivered, rerun = (
        publisher.events[: marks[0]],
        publisher.events[marks[0] : marks[1]],
        publisher.events[marks[1] :],
    )
    assert kinds(first) == ["signal", "bar"] and first[0] == row.to_event()
    assert kinds(redelivered) == ["bar"] and kinds(rerun) == ["bar"]
    assert (run.signals, again.signals) == (1, 0)
    assert again.machine("AAPL").machines[0].state == "COOLDOWN", "the new machine did fire"


# --- a whole run ---------------------------------------------------------------------------


def test_a_whole_csv_run_ends_idle_with_exactly_the_signals_replay_computes(tmp_path):
    bars = sawtooth_bar_file(tmp_path / "bars.csv")
    rule = make_rule(name="Fast", definition=FAST)
    engine_request(desired="running")
    publisher = Recorder()
    overrides = Overrides(feed="csv", csv_path=str(bars), speed=0, rule_ids=(rule.pk,))
    engine = Engine(overrides=overrides, publisher=publisher)

    async def scenario():
        await engine.tick()
        run = engine.run
        await wait(run.task, "the csv run")
        await engine.tick()  # desired is "stopped" now: no second run
        return run

    run = asyncio.run(scenario())
    expected = replay_events(bars, rule, tmp_path)
    rows = list(Signal.objects.order_by("id"))
    assert len(expected) >= 10
    assert sorted((r.time.strftime("%Y-%m-%dT%H:%M:%SZ"), r.symbol, r.price, r.rule_id)
                  for r in rows) == sorted(
        (e["timestamp"], e["symbol"], e["price"], e["rule_id"]) for e in expected
    ), "worker and replay disagree"  # fmt: skip
    finished = f"Feed finished: 800 bars, {len(expected)} signals."
    assert engine.run is None and run.task.done() and (run.bars, run.signals) == (800, len(rows))
    state = engine_state()
    assert (state.state, state.message, state.desired) == ("idle", finished, "stopped")
    assert state.run_rule_ids == [] and state.run_watchlist_id is None
    assert state.run_started is None and not state.is_locked

    events = publisher.events
    assert publisher.statuses() == [
        ("connecting", starting("Fast", "the symbols in bars.csv", "csv")),
        ("running", "Replaying bars.csv as fast as possible."),
        ("idle", finished),
    ]
    assert kinds(events[:2]) == ["status", "status"] and kinds(events[-1:]) == ["status"]
    middle = events[2:-1]
    assert set(kinds(middle)) == {"signal", "outcome", "bar"}
    assert kinds(middle).count("bar") == 800
    assert [e for e in middle if e["event"] == "signal"] == [r.to_event() for r in rows]
    # Every bar the run took is stored (and its 1-minute bars), each signal's outcomes are
    # the core's definition over the file's bars, stored and published once each.
    assert StoredBar.objects.filter(seconds=5).count() == 800
    assert StoredBar.objects.filter(seconds=60).exists()
    file_bars = {}
    for b in StoredBar.objects.filter(seconds=5).order_by("time"):
        file_bars.setdefault(b.symbol, []).append((b.time + 5, b.high, b.low, b.close))
    published = [e for e in middle if e["event"] == "outcome"]
    stored = [o.to_event() for o in Outcome.objects.select_related("signal").order_by("id")]
    assert sorted(published, key=repr) == sorted(stored, key=repr) and len(stored) >= 10
    for out in Outcome.objects.select_related("signal"):
        sig = out.signal
        want = outcome_of(sig.price, sig.side or None, int(sig.time.timestamp()), out.horizon,
                          file_bars[sig.symbol])  # fmt: skip
        assert (out.return_pct, out.mfe_pct, out.mae_pct) == (
            want.return_pct, want.mfe_pct, want.mae_pct,
        )  # fmt: skip
    last_bar = max(t for bars_of in file_bars.values() for t, *_ in bars_of)
    for sig in rows:  # a horizon whose end the file reaches has its outcome; others none
        horizons = set(sig.outcomes.values_list("horizon", flat=True))
        reached = {h for h in (60, 300, 900) if int(sig.time.timestamp()) + h <= last_bar}
        assert horizons == reached, sig
    for i, event in enumerate(middle):
        if event["event"] == "signal":  # stored and published before its own bar
            its_bar = next(e for e in middle[i + 1 :] if e["event"] != "outcome")
            assert its_bar["event"] == "bar" and its_bar["symbol"] == event["symbol"]
            assert parse_time(its_bar["time"]) + 5 == parse_time(event["timestamp"])
            assert its_bar["state"] == "COOLDOWN"


def test_a_second_run_over_the_same_file_stores_and_publishes_no_duplicates(tmp_path):
    path = write_bars(tmp_path / "zigzag.csv", zigzag_rows("AAPL", 100.0, 120, start=T0))
    overrides = Overrides(feed="csv", csv_path=str(path), speed=0)

    async def one_run(engine):
        await db(engine_request, desired="running")
        await engine.tick()
        await wait(engine.run.task, "the csv run")

    first = Recorder()
    asyncio.run(one_run(Engine(overrides=overrides, publisher=first)))
    rows = list(Signal.objects.order_by("id"))
    assert len(rows) >= 3
    second = Recorder()
    asyncio.run(one_run(Engine(overrides=overrides, publisher=second)))
    assert list(Signal.objects.order_by("id")) == rows
    assert first.statuses()[-1] == ("idle", f"Feed finished: 120 bars, {len(rows)} signals.")
    assert second.statuses()[-1] == ("idle", "Feed finished: 120 bars, 0 signals.")
    assert "signal" not in kinds(second.events) and kinds(second.events).count("bar") == 120


def test_a_run_that_ends_between_ticks_records_its_last_bar_time(tmp_path):
    path = write_bars(tmp_path / "short.csv", zigzag_rows("AAPL", 100.0, 40, start=T0))
    overrides = Overrides(feed="csv", csv_path=str(path), speed=0)
    publisher = Recorder()
    engine = Engine(overrides=overrides, publisher=publisher)

    async def scenario():
        await engine.start_run()
        run = engine.run
        await wait(run.task, "the csv run")
        return run

    run = asyncio.run(scenario())
    assert run.last_bar_time == T0 + 40 * 5
    assert publisher.statuses()[-1] == ("idle", "Feed finished: 40 bars, 2 signals.")
    assert engine_state().last_bar_time == utc(T0 + 40 * 5)  # the dashboard's "last bar"


def test_a_tick_while_a_run_is_ending_does_not_start_it_again(feeds):
    engine_request(desired="running")
    script = [StatusEvent("running", "Scripted bars."), BarEvent(bar("AAPL", 0, 100.0))]
    ending = ScriptedFeed(script, end=True, gated=True)
    feeds.queue += [ending, ScriptedFeed()]  # the second is what a restart would get
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        await engine.tick()
        run = engine.run
        ending.go()
        # The feed's end runs on into end_run up to its first database write; the worker's
        # periodic tick lands while end_run writes (its reads queue behind that write).
        await wait(ending.drained.wait(), "the feed's end")
        await engine.tick()
        await wait(run.task, "the run's end")
        restarted = engine.run
        if restarted is not None:
            await engine.stop_run("Stopped.")
        return restarted

    restarted = asyncio.run(scenario())
    assert publisher.statuses()[:2] == [("connecting", starting()), ("running", "Scripted bars.")]
    assert restarted is None and len(feeds.configs) == 1, "the finished run started again"
    assert publisher.statuses()[-1] == ("idle", "Feed finished: 1 bars, 0 signals.")


# --- stop_run ------------------------------------------------------------------------------


def test_stop_run_stops_a_run_in_progress_closes_the_feed_and_releases_the_locks(tmp_path):
    path = write_bars(tmp_path / "slow.csv", zigzag_rows("AAPL", 100.0, 50, start=T0))
    # 0.001× real time: after its first bar the feed waits 5000 s for the next one.
    overrides = Overrides(feed="csv", csv_path=str(path), speed=0.001)
    publisher = Recorder()
    engine = Engine(overrides=overrides, publisher=publisher)

    async def scenario():
        await engine.start_run()
        run = engine.run
        await publisher.wait_for(lambda: "bar" in kinds(publisher.events), "the first bar")
        during = await db(engine_state)
        await engine.stop_run("Stopped.")
        return run, during

    run, during = asyncio.run(scenario())
    assert during.is_locked and during.state == "running"
    assert run.feed._closed.is_set() and run.feed.bars_read == 1 and run.task.done()
    assert engine.run is None and run.bars == 1
    assert publisher.statuses() == [
        ("connecting", starting(where="the symbols in slow.csv", feed="csv")),
        ("running", "Replaying slow.csv 0.001× real time."),
        ("stopping", "Stopping…"),
        ("idle", "Stopped."),
    ]
    assert kinds(publisher.events) == ["status", "status", "bar", "status", "status"]
    state = engine_state()
    assert (state.state, state.message) == ("idle", "Stopped.")
    assert state.run_rule_ids == [] and state.run_watchlist_id is None
    assert state.run_started is None and not state.is_locked


# --- a feed error --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("good_bars", "broken"),
    [
        (0, "2025-12-16T14:30:00Z,1,2,0.5,oops,10"),  # no symbol column: BAD, from the name
        (30, "2025-12-16T14:32:30Z,100,101,99,oops,10,AAPL"),  # after 30 good bars
    ],
)
def test_a_broken_csv_line_is_an_error_state_and_the_worker_goes_on(tmp_path, good_bars, broken):
    path = tmp_path / "bad.csv"
    if good_bars:
        write_bars(path, zigzag_rows("AAPL", 100.0, good_bars, start=T0))
    else:
        path.write_text("time,open,high,low,close,volume\n")
    with path.open("a") as fh:
        fh.write(broken + "\n")
    line = good_bars + 2  # the header, the good bars, then the broken one
    overrides = Overrides(feed="csv", csv_path=str(path), speed=0)
    publisher = Recorder()
    engine = Engine(overrides=overrides, publisher=publisher, start=True)

    def errors() -> list[str]:
        return [m for s, m in publisher.statuses() if s == "error"]

    async def scenario():
        main = asyncio.create_task(engine.main())
        await publisher.wait_for(errors, "the error state")
        failed = await db(engine_state)
        alive = not main.done()
        # The worker still follows the desired state: Start again, the same file, the same
        # error, reported again.
        await db(engine_request, desired="running")
        engine.on_command("start")
        await publisher.wait_for(lambda: len(errors()) == 2, "the second error")
        again = await db(engine_state)
        engine.request_shutdown()
        await wait(main, "main to return")
        return failed, alive, again

    failed, alive, again = asyncio.run(scenario())
    message = f"{path}, line {line}: column close: 'oops' is not a number"
    assert alive, "the worker must survive bad input"
    assert (failed.state, failed.message, failed.desired) == ("error", message, "stopped")
    assert failed.run_rule_ids == [] and failed.run_watchlist_id is None
    assert failed.run_started is None and not failed.is_locked
    assert (again.state, again.message, again.desired) == ("error", message, "stopped")
    start = starting(where="the symbols in bad.csv", feed="csv")
    replaying = ("running", "Replaying bad.csv as fast as possible.")
    assert publisher.statuses() == [
        ("connecting", start), replaying, ("error", message),
        ("connecting", start), replaying, ("error", message),
        ("idle", "The engine worker stopped."),
    ]  # fmt: skip
    assert kinds(publisher.events).count("bar") == 2 * good_bars
    assert publisher.closed
    state = engine_state()
    assert (state.state, state.message) == ("idle", "The engine worker stopped.")


# --- main: recovery, start and shutdown ----------------------------------------------------


def test_main_recovers_a_dead_workers_locks_and_shuts_down_cleanly(caplog, made_feeds):
    make_running_engine(rule=system_rule(), watchlist=default_watchlist())
    EngineState.objects.filter(pk=1).update(
        pid=999_999, heartbeat=timezone.now() - timedelta(seconds=60)
    )
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        main = asyncio.create_task(engine.main())
        recovered = await until(this_worker_state, "the recovery")
        engine.request_shutdown()
        await wait(main, "main to return")
        return recovered

    with caplog.at_level(logging.WARNING, logger="engine.worker.engine"):
        recovered = asyncio.run(scenario())
    assert (recovered.state, recovered.message) == ("idle", RECOVERED)
    assert recovered.run_rule_ids == [] and recovered.run_watchlist_id is None
    assert recovered.run_started is None and recovered.is_alive and not recovered.is_locked
    assert RECOVERED in caplog.messages
    assert made_feeds == [] and publisher.closed
    assert publisher.statuses() == [("idle", "The engine worker stopped.")]
    state = engine_state()
    assert (state.state, state.message, state.desired) == (
        "idle", "The engine worker stopped.", "stopped",
    )  # fmt: skip


def test_main_without_a_dead_worker_reports_ready(made_feeds):
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        main = asyncio.create_task(engine.main())
        ready = await until(this_worker_state, "the worker's first write")
        engine.request_shutdown()
        await wait(main, "main to return")
        return ready

    ready = asyncio.run(scenario())
    assert (ready.state, ready.message) == ("idle", "Engine ready. Press Start to scan.")
    assert publisher.statuses() == [("idle", "The engine worker stopped.")] and publisher.closed


def test_main_resumes_the_desired_run_after_a_dead_worker_and_stops_it_on_shutdown(caplog, feeds):
    other_rule = make_rule(name="Held by the dead worker")
    other_list = make_watchlist(name="Dead", symbols=["IBM"])
    make_running_engine(rule=other_rule, watchlist=other_list)
    EngineState.objects.filter(pk=1).update(
        pid=999_999, heartbeat=timezone.now() - timedelta(seconds=60), desired="running"
    )
    feed = ScriptedFeed([StatusEvent("running", "Scripted bars."), BarEvent(bar("AAPL", 0, 1.0))])
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        main = asyncio.create_task(engine.main())
        await wait(feed.drained.wait(), "the resumed run's bars")
        during = await db(engine_state)
        engine.request_shutdown()
        await wait(main, "main to return")
        return during

    with caplog.at_level(logging.WARNING, logger="engine.worker.engine"):
        during = asyncio.run(scenario())
    assert RECOVERED in caplog.messages
    assert (during.run_rule_ids, during.run_watchlist_id) == (
        [system_rule().pk], default_watchlist().pk,
    )  # fmt: skip
    assert during.pid == os.getpid() and during.is_locked
    assert feed.closed.is_set() and publisher.closed
    assert publisher.statuses() == [
        ("connecting", starting()),
        ("running", "Scripted bars."),
        ("stopping", "Stopping…"),
        ("idle", "The engine worker stopped."),
    ]
    state = engine_state()
    assert (state.state, state.message) == ("idle", "The engine worker stopped.")
    assert state.run_rule_ids == [] and state.run_watchlist_id is None
    # Shutdown is not Stop: the next worker resumes the run the user asked for.
    assert state.desired == "running"


# --- a demo run with the pages' locks ------------------------------------------------------


def test_a_demo_run_follows_start_and_stop_and_locks_while_running():
    publisher = Recorder()
    engine = Engine(overrides=Overrides(feed="demo", speed=0), publisher=publisher)

    def while_running() -> tuple[EngineState, str, str]:
        state = engine_state()
        active = Watchlist.objects.get(is_active=True)
        try:
            watchlist_remove_symbol(watchlist=active, symbol="TSLA")
            refused = ""
        except ValidationError as err:
            refused = " ".join(err.messages)
        custom = make_rule(name="Free to edit")
        rule_update(rule=custom, name="Edited while running")
        return state, refused, Rule.objects.get(pk=custom.pk).name

    async def scenario():
        main = asyncio.create_task(engine.main())
        ready = await until(this_worker_state, "the worker's first write")
        assert ready.state == "idle" and ready.is_alive
        assert await db(Signal.objects.count) == 0 and publisher.events == []
        await db(engine_request, desired="running")
        engine.on_command("start")
        await publisher.wait_for(lambda: "signal" in kinds(publisher.events), "a demo signal")
        running = await db(while_running)
        await db(engine_request, desired="stopped")
        engine.on_command("stop")
        await publisher.wait_for(lambda: ("idle", "Stopped.") in publisher.statuses(), "Stopped")
        stopped = await db(engine_state)
        count = await db(Signal.objects.count)
        await db(watchlist_remove_symbol, watchlist=await db(default_watchlist), symbol="TSLA")
        engine.request_shutdown()
        await wait(main, "main to return")
        return running, stopped, count

    (state, refused, edited), stopped, count = asyncio.run(scenario())
    assert state.state == "running" and state.is_locked and state.run_rule_ids == [system_rule().pk]
    assert refused == (
        "The engine is running with the watchlist “Default”: stop the engine before changing it."
    )
    assert edited == "Edited while running"
    assert (stopped.state, stopped.message) == ("idle", "Stopped.") and not stopped.is_locked
    assert stopped.run_rule_ids == [] and stopped.run_watchlist_id is None
    assert count >= 1 and Signal.objects.count() == count
    assert default_watchlist().symbols == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert publisher.statuses()[-1] == ("idle", "The engine worker stopped.")


# --- several active rules (DESIGN §7.2) ----------------------------------------------------

BUY_ABOVE_MA3 = {**ABOVE_MA3, "side": "buy"}
ABOVE_103 = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": 103}],
    "cooldown_sec": 0,
}
SELL_BELOW_MA3 = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": "<", "right": "MA3"}],
    "cooldown_sec": 0,
    "side": "sell",
}
SLOW_TREND = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA20@1m"}],
    "cooldown_sec": 60,
    "side": "buy",
}


def test_on_bar_runs_every_rule_on_the_symbol_and_stores_each_signal_as_its_own():
    buy = make_rule(name="Buy above MA3", definition=BUY_ABOVE_MA3)
    plain = make_rule(name="Above 103", definition=ABOVE_103)
    sell = make_rule(name="Sell below MA3", definition=SELL_BELOW_MA3)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        overrides = Overrides(rule_ids=(buy.pk, plain.pk, sell.pk), feed="demo")
        config = await db(load_run_config, overrides)
        run = Run(config=config, feed=ScriptedFeed())
        for i, close in enumerate([100.0, 101.0, 102.0]):
            await engine.on_bar(run, bar("AAPL", i, close), warmup=True)
        await engine.on_bar(run, bar("AAPL", 3, 104.0), warmup=False)  # buy and plain fire
        await engine.on_bar(run, bar("AAPL", 4, 100.0), warmup=False)  # sell fires
        return run

    run = asyncio.run(scenario())
    rows = list(Signal.objects.order_by("id"))
    assert [(r.rule_id, r.rule_name, r.side, r.time, r.price) for r in rows] == [
        (buy.pk, "Buy above MA3", "buy", utc(T0 + 20), 104.0),
        (plain.pk, "Above 103", "", utc(T0 + 20), 104.0),
        (sell.pk, "Sell below MA3", "sell", utc(T0 + 25), 100.0),
    ]
    assert kinds(publisher.events) == ["signal", "signal", "bar", "signal", "bar"]
    signals = [e for e in publisher.events if e["event"] == "signal"]
    assert signals == [row.to_event() for row in rows]
    assert [e["side"] for e in signals] == ["buy", None, "sell"]
    first_bar, second_bar = (e for e in publisher.events if e["event"] == "bar")
    # The seed's keys are the first rule's; ``rules`` has each rule's machine, in run order.
    assert (first_bar["state"], first_bar["cooldown_until"]) == ("COOLDOWN", "2025-12-16T14:30:30Z")
    assert first_bar["rules"] == [
        {"rule_id": buy.pk, "state": "COOLDOWN", "cooldown_until": "2025-12-16T14:30:30Z"},
        {"rule_id": plain.pk, "state": "COOLDOWN", "cooldown_until": "2025-12-16T14:30:20Z"},
        {"rule_id": sell.pk, "state": "WAIT", "cooldown_until": None},
    ]
    assert second_bar["rules"] == [
        {"rule_id": buy.pk, "state": "COOLDOWN", "cooldown_until": "2025-12-16T14:30:30Z"},
        {"rule_id": plain.pk, "state": "WAIT", "cooldown_until": None},
        {"rule_id": sell.pk, "state": "COOLDOWN", "cooldown_until": "2025-12-16T14:30:25Z"},
    ]
    assert second_bar["values"] == {"PRICE": 100.0, "MA3": 102.0}
    assert (run.bars, run.signals) == (2, 3)
    assert len(run.machine("AAPL").machines) == 3


def test_a_run_takes_the_active_set_warms_up_for_the_longest_timeframe_and_names_the_rules(
    feeds,
):
    slow = make_rule(name="Slow trend", definition=SLOW_TREND)
    rules_activate(ids=[slow.pk])
    engine_request(desired="running")
    feed = ScriptedFeed()
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        await engine.tick()
        await wait(until(lambda: feed.asked, "the feed to be asked"), "the feed")
        state = await db(engine_state)
        await engine.stop_run("Stopped.")
        return state

    state = asyncio.run(scenario())
    config = feeds.configs[0]
    assert [(r.id, r.name) for r in config.rules] == [
        (system_rule().pk, "MA Momentum"),
        (slow.pk, "Slow trend"),
    ]
    # 20 one-minute bars of 12 five-second bars, a partial first minute, one for crossings.
    slow_warmup = validate_definition(SLOW_TREND).warmup_bars(5)
    assert slow_warmup == 20 * 12 + 12 + 1
    assert feed.asked == (tuple(DEFAULT_SYMBOLS.split()), 5, slow_warmup)
    assert state.run_rule_ids == [system_rule().pk, slow.pk] and state.is_locked
    assert publisher.statuses()[0] == ("connecting", starting(("MA Momentum", "Slow trend")))


def test_a_rule_whose_timeframe_does_not_fit_the_bar_size_stops_the_start(made_feeds):
    fine = make_rule(name="Minute MA", definition={**ABOVE_103, "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA5@1m"}]})  # fmt: skip
    short = make_rule(name="Too short", definition={**ABOVE_103, "conditions": [
        {"left": "MA5@5s", "op": ">", "right": "MA10"}]})  # fmt: skip
    rules_activate(ids=[fine.pk, short.pk])
    engine_request(desired="running")
    publisher = Recorder()
    engine = Engine(overrides=Overrides(feed="demo", bar_seconds=60), publisher=publisher)

    async def scenario():
        await engine.tick()
        return await db(engine_state)

    failed = asyncio.run(scenario())
    problem = timeframe_problem(validate_definition(short.definition), 60)
    assert problem is not None and "MA5@5s" in problem
    sentence = f"The rule “Too short” can't run: {problem}."
    assert (failed.state, failed.message, failed.desired) == ("error", sentence, "stopped")
    assert failed.run_rule_ids == [] and not failed.is_locked
    assert made_feeds == [] and publisher.statuses() == [("error", sentence)]
    # On 5-second bars both fit.
    config = load_run_config(Overrides(feed="demo", bar_seconds=5))
    assert [r.name for r in config.rules] == ["MA Momentum", "Minute MA", "Too short"]


def test_a_run_with_an_invalid_active_rule_names_it(made_feeds):
    broken = make_rule(name="Broken")
    rules_activate(ids=[broken.pk])
    Rule.objects.filter(pk=broken.pk).update(definition={"logic": "AND"})  # as an old bug did
    engine_request(desired="running")
    engine = Engine(overrides=Overrides(feed="demo"), publisher=Recorder())
    asyncio.run(engine.tick())
    failed = engine_state()
    assert failed.state == "error"
    assert failed.message.startswith("The rule “Broken” is invalid: conditions")
    assert made_feeds == [] and failed.run_rule_ids == []


def test_an_items_contract_goes_into_its_signals_and_its_market_into_the_engine_state(feeds):
    """DESIGN §7.1: the feed says what it resolved each item to and when its market opens or
    closes; the signal row and its event carry the contract, the engine state each item's
    market line (the dashboard and GET /api/engine/ read it)."""
    from engine.core.instruments import ContractInfo
    from engine.feeds.base import InstrumentEvent, MarketEvent

    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    make_watchlist(name="Futures", symbols=["ES:FUT:CME", "EURUSD:CASH"])
    es = ContractInfo("ESZ6", "FUT", "CME", "USD", "0.25")

    def es_bar(i: int, close: float) -> Bar:
        return Bar("ES:FUT:CME", T0 + 5 * i, 5, close, close + 0.25, close - 0.25, close, 10)

    script = [
        InstrumentEvent("ES:FUT:CME", es),
        MarketEvent("ES:FUT:CME", True, "trading (CME Globex)"),
        MarketEvent("EURUSD:CASH", False, "closed, opens Sun 17:00 America/New_York"),
        *(BarEvent(es_bar(i, c), warmup=True) for i, c in enumerate([6000.0, 6000.25, 6000.5])),
        BarEvent(es_bar(3, 6000.25)),
        BarEvent(es_bar(4, 6001.75)),  # above MA3: fires
    ]
    feed = ScriptedFeed(script)
    feeds.queue.append(feed)
    publisher = Recorder()
    engine = Engine(
        overrides=Overrides(rule_ids=(rule.pk,), watchlist="Futures"), publisher=publisher
    )

    async def scenario():
        await engine.start_run()
        await wait(feed.drained.wait(), "the scripted events")
        state = await db(engine_state)
        await engine.stop_run("Stopped.")
        return state

    state = asyncio.run(scenario())
    row = Signal.objects.get()
    assert (row.symbol, row.price, row.contract) == ("ES:FUT:CME", 6001.75, es.to_json())
    signal = next(e for e in publisher.events if e["event"] == "signal")
    assert signal == row.to_event() and signal["contract"]["local_symbol"] == "ESZ6"
    assert all(e["contract"] == es.to_json() for e in publisher.events if e["event"] == "bar")
    no_stream = {"stream": None, "stream_reason": "", "stream_since": None}
    assert state.symbols == {
        # last_bar: written when ES went live (its warm-up's end); later ones at each tick
        "ES:FUT:CME": {"contract": es.to_json(), "open": True, "market": "trading (CME Globex)",
                       **no_stream, "last_bar": T0 + 15},
        "EURUSD:CASH": {
            "contract": None, "open": False, "market": "closed, opens Sun 17:00 America/New_York",
            **no_stream, "last_bar": None,
        },
    }  # fmt: skip


def test_a_bar_with_a_price_finer_than_1e8_is_skipped_with_a_notice_and_the_run_goes_on():
    """The core keeps 8 decimals exactly and never rounds: a computed price with a ninth
    decimal is one notice naming the item, not an internal error ending the run."""
    rule = make_rule(name="Above MA3", definition=ABOVE_MA3)
    publisher = Recorder()
    engine = Engine(publisher=publisher)

    async def scenario():
        config = await db(load_run_config, Overrides(rule_ids=(rule.pk,), feed="demo"))
        run = Run(config=config, feed=ScriptedFeed())
        for i, close in enumerate([1.08, 1.08005, 1.0801]):
            await engine.on_bar(run, Bar("EURUSD:CASH", T0 + 5 * i, 5, close, close, close,
                                         close, 0), warmup=True)  # fmt: skip
        fine = Bar("EURUSD:CASH", T0 + 15, 5, 1.0801, 1.0801, 1.0801, 1.000000001, 0)
        await engine.on_bar(run, fine, warmup=False)
        good = Bar("EURUSD:CASH", T0 + 20, 5, 1.0802, 1.0802, 1.0802, 1.0802, 0)
        await engine.on_bar(run, good, warmup=False)
        return run

    run = asyncio.run(scenario())
    assert (run.bars, run.last_bar_time) == (1, T0 + 25), "only the good bar counts"
    notices = [e["message"] for e in publisher.events if e["event"] == "status"]
    assert notices == [
        "Skipped a bar: EURUSD:CASH: price 1.000000001 is finer than 0.00000001; prices finer "
        "than 0.00000001 (8 decimals) are not supported."
    ]
    assert Signal.objects.get().price == 1.0802  # the good bar still fires (above MA3)
