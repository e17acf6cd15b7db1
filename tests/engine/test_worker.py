"""The real worker process (``manage.py runengine``): a whole csv run against replay, SIGTERM,
kill -9 and the next worker's recovery, and the exit code of bad arguments.

The worker's steps (start, stop, reload, bad config, feed errors, locks, events in order) are
tested in-process in ``test_worker_steps.py``."""

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from engine.models import EngineState
from signals.models import Signal
from tests.engine.helpers import (
    engine_state,
    replay_events,
    sawtooth_bar_file,
    start_worker,
    stop_worker,
    wait_until,
)
from tests.factories import make_rule

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC, a Tuesday at the NYSE open


def test_csv_run_stores_exactly_the_signals_replay_computes(tmp_path):
    bars = sawtooth_bar_file(tmp_path / "bars.csv")
    rule = make_rule(name="Fast", definition={
        "logic": "AND", "cooldown_sec": 30, "trigger": "level",
        "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                       {"left": "MA5", "op": ">", "right": "MA10"}]})  # fmt: skip
    args = ["--csv", str(bars), "--speed", "max", "--rule", str(rule.pk), "--start"]
    proc = start_worker(*args, log_path=tmp_path / "worker.log")
    try:
        state = wait_until(lambda: (s := engine_state()) and s.message.startswith("Feed finished")
                           and s, what="the csv run to finish")  # fmt: skip
        assert state.state == "idle" and state.desired == "stopped"
        assert state.run_rule_ids == [] and state.run_watchlist_id is None
        assert state.message.startswith("Feed finished: 800 bars")
    finally:
        assert stop_worker(proc) == 0, (tmp_path / "worker.log").read_text()
    expected = replay_events(bars, rule, tmp_path)
    assert len(expected) >= 10
    stored = sorted(
        (s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), s.symbol, s.price, s.rule_id)
        for s in Signal.objects.all()
    )
    assert stored == sorted(
        (e["timestamp"], e["symbol"], e["price"], e["rule_id"]) for e in expected
    ), "worker and replay disagree"


def test_csv_run_with_two_rules_stores_each_rule_signals_as_its_own_replay(tmp_path):
    """``--rule A,B``: one machine per (rule, symbol); each rule's signals are exactly what
    replay computes for that rule alone, each row stamped with its rule's name and side."""
    bars = sawtooth_bar_file(tmp_path / "bars.csv")
    fast = make_rule(name="Fast buy", definition={
        "logic": "AND", "cooldown_sec": 30, "trigger": "level", "side": "buy",
        "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                       {"left": "MA5", "op": ">", "right": "MA10"}]})  # fmt: skip
    dip = make_rule(name="Dip sell", definition={
        "logic": "AND", "cooldown_sec": 20, "trigger": "edge", "side": "sell",
        "conditions": [{"left": "PRICE", "op": "<", "right": "MA5"}]})  # fmt: skip
    args = ["--csv", str(bars), "--speed", "max", "--rule", f"{fast.pk},{dip.pk}", "--start"]
    proc = start_worker(*args, log_path=tmp_path / "worker.log")
    try:
        state = wait_until(lambda: (s := engine_state()) and s.message.startswith("Feed finished")
                           and s, what="the csv run to finish")  # fmt: skip
        assert state.state == "idle" and state.run_rule_ids == []
    finally:
        assert stop_worker(proc) == 0, (tmp_path / "worker.log").read_text()
    for rule, side in ((fast, "buy"), (dip, "sell")):
        expected = replay_events(bars, rule, tmp_path)
        assert len(expected) >= 5
        rows = Signal.objects.filter(rule_id=rule.pk)
        assert {(s.rule_name, s.side) for s in rows} == {(rule.name, side)}
        assert sorted(
            (s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), s.symbol, s.price) for s in rows
        ) == sorted((e["timestamp"], e["symbol"], e["price"]) for e in expected), rule.name
        assert {e["side"] for e in expected} == {side}


def test_sigterm_stops_cleanly_and_releases_the_locks(tmp_path):
    proc = start_worker("--feed", "demo", "--start", log_path=tmp_path / "worker.log")
    wait_until(lambda: (s := engine_state()) and s.state == "running" and s.is_locked,
               what="running")  # fmt: skip
    assert stop_worker(proc) == 0
    state = engine_state()
    assert state.state == "idle" and state.message == "The engine worker stopped."
    assert state.run_rule_ids == [] and state.run_watchlist_id is None


def test_kill_9_leaves_a_stale_lock_that_expires_and_the_next_worker_clears(tmp_path):
    proc = start_worker("--feed", "demo", "--start", log_path=tmp_path / "worker.log")
    wait_until(lambda: (s := engine_state()) and s.state == "running" and s.is_locked,
               what="running")  # fmt: skip
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert engine_state().run_rule_ids != [], "a killed worker can't clean up"
    # Ten seconds pass without a heartbeat (moved back instead of sleeping):
    EngineState.objects.filter(pk=1).update(heartbeat=timezone.now() - timedelta(seconds=11))
    state = engine_state()
    assert state.effective_state == "offline" and not state.is_locked
    proc = start_worker("--feed", "demo", log_path=tmp_path / "worker2.log")
    try:
        # desired is still "running" from before the kill: the new worker resumes the run.
        wait_until(lambda: engine_state().state == "running" and engine_state().pid == proc.pid,
                   what="the run to resume")  # fmt: skip
    finally:
        assert stop_worker(proc) == 0
    assert (
        "Recovered from a worker that stopped without cleaning up"
        in (tmp_path / "worker2.log").read_text()
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--rule", "999"], "There is no rule with id 999."),
        (["--watchlist", "Nope"], "There is no watchlist named 'Nope'."),
        (["--csv", "/no/such.csv"], "/no/such.csv: no such file."),
        (["--feed", "ib", "--csv", "x.csv"], "--csv goes with --feed csv."),
        (["--bar-seconds", "7"], "invalid choice"),
        (["--speed", "-1"], "invalid speed_arg value"),
        (["--speed", "nan"], "invalid speed_arg value: 'nan'"),
        (["--speed", "inf"], "invalid speed_arg value: 'inf'"),
        (["--speed", "٣"], "invalid speed_arg value"),
        (["--rule", "٣"], "--rule='٣' is not a whole number"),
        (["--rule", "9" * 5000], "is out of range"),
        (["--rule", "999,998"], "There is no rule with id 999."),
        (["--rule", "1,x"], "--rule='x' is not a whole number"),
        (["--rule", ",".join(str(n) for n in range(1, 12))], "at most 10 rules run at once"),
    ],
)
def test_runengine_bad_arguments_exit_2(tmp_path, args, fragment):
    proc = start_worker(*args, log_path=tmp_path / "worker.log")
    assert proc.wait(timeout=60) == 2
    output = (tmp_path / "worker.log").read_text()
    assert fragment in output and "Traceback" not in output
