"""The worker process end to end on the csv and demo feeds: signals, states, locks, stops."""

import json
import os
import signal
from io import StringIO

import pytest
from django.core.management import call_command

from engine.services import engine_request
from rules.models import Rule
from signals.models import Signal
from tests.engine.helpers import (
    engine_state,
    start_worker,
    stop_worker,
    trend_bars,
    wait_until,
    write_bars,
)
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC, a Tuesday at the NYSE open


def sawtooth(n: int, base: float) -> list[float]:
    """Rises for 15 bars, falls for 10, repeated: the MA rule fires on each rise."""
    out, price = [], base
    for i in range(n):
        price += 0.05 if i % 25 < 15 else -0.07
        out.append(round(price, 2))
    return out


def make_bar_file(tmp_path, n=400):
    rows = trend_bars("AAPL", T0, sawtooth(n, 190.0)) + trend_bars("MSFT", T0, sawtooth(n, 410.0))
    rows.sort(key=lambda r: (r[0], r[6]))
    return write_bars(tmp_path / "bars.csv", rows)


def replay_events(bars, rule: Rule, tmp_path) -> list[dict]:
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(rule.to_json()))
    out = StringIO()
    call_command("replay", "--bars", str(bars), "--rule", str(rule_file), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_csv_run_stores_exactly_the_signals_replay_computes(tmp_path):
    bars = make_bar_file(tmp_path)
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
        assert state.run_rule_id is None and state.run_watchlist_id is None
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


def test_demo_run_follows_start_and_stop_and_locks_while_running(tmp_path):
    from django.core.exceptions import ValidationError

    from rules.services import rule_update
    from watchlists.models import Watchlist
    from watchlists.services import watchlist_remove_symbol

    proc = start_worker("--feed", "demo", "--speed", "50", log_path=tmp_path / "worker.log")
    try:
        wait_until(lambda: (s := engine_state()) and s.is_alive and s.state == "idle",
                   what="an idle worker")  # fmt: skip
        assert Signal.objects.count() == 0
        engine_request(desired="running")
        wait_until(lambda: engine_state().state == "running", what="running")
        wait_until(lambda: Signal.objects.exists(), what="a demo signal")
        state = engine_state()
        assert state.is_locked and state.run_rule.is_system
        active = Watchlist.objects.get(is_active=True)
        with pytest.raises(ValidationError, match="stop the engine"):
            watchlist_remove_symbol(watchlist=active, symbol="TSLA")
        custom = make_rule(name="Free to edit")
        rule_update(rule=custom, name="Edited while running")
        engine_request(desired="stopped")
        wait_until(lambda: engine_state().state == "idle" and not engine_state().is_locked,
                   what="stopped and unlocked")  # fmt: skip
        assert engine_state().message == "Stopped."
        count = Signal.objects.count()
        watchlist_remove_symbol(watchlist=active, symbol="TSLA")
    finally:
        assert stop_worker(proc) == 0, (tmp_path / "worker.log").read_text()
    assert Signal.objects.count() == count


def test_sigterm_stops_cleanly_and_releases_the_locks(tmp_path):
    proc = start_worker("--feed", "demo", "--start", log_path=tmp_path / "worker.log")
    wait_until(lambda: (s := engine_state()) and s.state == "running" and s.is_locked,
               what="running")  # fmt: skip
    assert stop_worker(proc) == 0
    state = engine_state()
    assert state.state == "idle" and state.message == "The engine worker stopped."
    assert state.run_rule_id is None and state.run_watchlist_id is None


def test_kill_9_leaves_a_stale_lock_that_expires_and_the_next_worker_clears(tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from engine.models import EngineState

    proc = start_worker("--feed", "demo", "--start", log_path=tmp_path / "worker.log")
    wait_until(lambda: (s := engine_state()) and s.state == "running" and s.is_locked,
               what="running")  # fmt: skip
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert engine_state().run_rule_id is not None, "a killed worker can't clean up"
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


def test_a_run_that_cannot_start_says_why_and_does_not_retry(tmp_path):
    wl = make_watchlist(name="Empty", symbols=[])
    proc = start_worker("--feed", "demo", "--watchlist", "Empty", "--start",
                        log_path=tmp_path / "worker.log")  # fmt: skip
    try:
        state = wait_until(lambda: (s := engine_state()) and s.state == "error" and s,
                           what="the error state")  # fmt: skip
        assert state.message == f"The watchlist “{wl.name}” has no symbols: add up to 5."
        assert state.desired == "stopped" and not state.is_locked
    finally:
        assert stop_worker(proc) == 0


def test_a_broken_csv_file_is_an_error_state_not_a_crash(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high,low,close,volume\n2025-12-16T14:30:00Z,1,2,0.5,oops,10\n")
    proc = start_worker("--csv", str(bad), "--speed", "max", "--start",
                        log_path=tmp_path / "worker.log")  # fmt: skip
    try:
        state = wait_until(lambda: (s := engine_state()) and s.state == "error" and s,
                           what="the error state")  # fmt: skip
        assert "bad.csv, line 2" in state.message and "close" in state.message
        assert proc.poll() is None, "the worker must survive bad input"
    finally:
        assert stop_worker(proc) == 0


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
    ],
)
def test_runengine_bad_arguments_exit_2(tmp_path, args, fragment):
    proc = start_worker(*args, log_path=tmp_path / "worker.log")
    assert proc.wait(timeout=60) == 2
    output = (tmp_path / "worker.log").read_text()
    assert fragment in output and "Traceback" not in output
