"""Soak: a 6.5-hour IB session (09:30-16:00 New York) for 5 symbols, compressed into about
5 minutes on the shared test clock, with every fault TWS has in a day sprinkled at seeded
random times and the worker killed -9 twice. The worker and the fake TWS run as their own
processes. Stored signals must equal `replay` over every bar of the day (none lost, none
twice), the worker's RSS must stay flat, and the engine events log must tell the day as a
story (printed: run with -s to read it)."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from io import StringIO

import pytest
from django.core.management import call_command

from engine import services
from engine.models import EngineEvent
from signals.models import Signal
from tests.engine.helpers import (
    Gateway,
    engine_state,
    gateway_symbol,
    start_worker,
    stop_worker,
    wait_until,
    write_bars,
)
from tests.engine.soak_day import (
    Day,
    SessionClock,
    by_bucket,
    day_bars,
    fault_schedule,
    in_order,
    market_epoch,
    ny_time,
)
from tests.factories import make_rule, make_watchlist

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

DAY = "2026-12-03"  # a Thursday
SPEED = 80.0  # 23,400 s of session in 292 s
SEED = 14
CLIENT_ID = 17
SYMBOLS = {"AAPL": 190.0, "MSFT": 410.0, "NVDA": 140.0, "AMZN": 210.0, "TSLA": 350.0}
SOAK_RULE = {
    "logic": "AND", "cooldown_sec": 20, "trigger": "level",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                   {"left": "MA5", "op": ">", "right": "MA10"}],
}  # fmt: skip
RSS_GROWTH_MB = 30.0
RUNNING = "Receiving 5-second bars for"


def story_expectations(kind: str, symbols: tuple[str, ...]) -> list[tuple[str, str]]:
    """What the engine events log must say after a fault of ``kind``: (label, a regular
    expression for the line), in order."""
    sym = symbols[0] if symbols else ""
    lost = "Lost the connection to TWS / IB Gateway"
    back = "Reconnected; data resubscribed, .* backfilled"
    return {
        "servers_lost_kept": [("1100", "lost its connection to IB's servers"),
                              ("1102", "connected to IB's servers again .*data was kept")],
        "servers_lost_data_lost": [("1100", "lost its connection to IB's servers"),
                                   ("1101", "connected to IB's servers again .*data was lost.*"
                                            "resubscribed")],
        "farm_blip": [("2103", "market data farm connection is broken"),
                      ("2104", "market data farm connection is OK again; renewed .*" + sym),
                      ("gap filled", f"{sym}: .*filled from IB's history")],
        "trade_bust": [("10225", f"{sym}: IB cancelled the realtime bars after a trade bust")],
        "competing_session": [("10197", "competing live session"),
                              ("its end", r"Bars from IB again: the competing live session ended")],
        "pacing": [("drop", lost), ("162 pacing", "pacing violation.* waiting"), ("back", back)],
        "daily_restart": [("restart", "IB Gateway daily restart .*back at about"),
                          ("back", back)],
        "gateway_restart": [("drop", lost), ("refused", "Can't reach TWS / IB Gateway"),
                            ("back", back)],
        "client_id_taken": [("drop", lost),
                            ("326", f"Client id {CLIENT_ID} is in use by another program"),
                            ("back", back)],
        # Counted: the two copies, the bar a day ahead and the one a day back.
        "bad_bars": [("4 bars ignored", f"{sym}: ignored 4 bars from IB")],
        "kill_worker": [("crash", "Recovered from a worker that stopped without cleaning up"),
                        ("catch-up", "Resumed after the worker stopped unexpectedly")],
    }[kind]  # fmt: skip


class Workers:
    """The worker process, started again after each kill -9."""

    def __init__(self, tmp_path, rule, watchlist, gw: Gateway, clock: SessionClock) -> None:
        self.args = ["--feed", "ib", "--rule", str(rule.pk), "--watchlist", watchlist.name,
                     "--start"]  # fmt: skip
        self.env = {
            "SCALP_IB_HOST": "127.0.0.1", "SCALP_IB_PORT": str(gw.port),
            "SCALP_IB_CLIENT_ID": str(CLIENT_ID), "SCALP_TEST_CLOCK": clock.value,
        }  # fmt: skip
        self.tmp_path = tmp_path
        self.procs: list = []
        self.kills = 0

    @property
    def current(self):
        return self.procs[-1] if self.procs else None

    def start(self) -> None:
        log = self.tmp_path / f"worker-{len(self.procs) + 1}.log"
        self.procs.append(start_worker(*self.args, log_path=log, **self.env))

    def kill(self) -> None:
        proc = self.current
        proc.kill()  # SIGKILL: no cleanup, the run stays "locked" in the database
        proc.wait(timeout=10)
        self.kills += 1

    def pid(self) -> int | None:
        proc = self.current
        return proc.pid if proc is not None and proc.poll() is None else None

    def logs(self) -> str:
        return "\n".join(
            f"--- worker-{i + 1}.log\n"
            + (self.tmp_path / f"worker-{i + 1}.log").read_text()[-3000:]
            for i in range(len(self.procs))
        )


def replay_signals(tmp_path, rule, rows: list[tuple], after: int) -> list[tuple]:
    """`replay` over ``rows``: its signals closing after ``after``, as stored_signals()."""
    bars = write_bars(tmp_path / "day-bars.csv", sorted(rows, key=lambda r: (r[0], r[6])))
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(rule.to_json()))
    out = StringIO()
    call_command("replay", "--bars", str(bars), "--rule", str(rule_file), "--bar-seconds", "5",
                 stdout=out)  # fmt: skip
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(after))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    return sorted(
        (e["timestamp"], e["symbol"], e["price"], e["rule_id"])
        for e in events
        if e["timestamp"] > stamp
    )


def stored_signals() -> list[tuple]:
    return sorted(
        (s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), s.symbol, s.price, s.rule_id)
        for s in Signal.objects.all()
    )


def story(clock: SessionClock) -> list[str]:
    """The engine events log, oldest first, each line at its market time (New York)."""
    return [
        f"{ny_time(clock.market(e.time.timestamp()))} [{e.state}] {e.message}"
        for e in EngineEvent.objects.order_by("id")
    ]


def rss_figures(samples: list[tuple[float, int, int]]) -> tuple[str, dict[int, float]]:
    """VmRSS per worker process (MB every 20 s of its life), and the growth (MB) of each
    process that lived a minute or more, from 20 s after its first sample (warm-up done) to
    its last sample."""
    lines, growth = [], {}
    for pid in dict.fromkeys(pid for _, pid, _ in samples):
        mine = [(wall, kb) for wall, p, kb in samples if p == pid]
        marks, shown = [], -20.0
        for wall, kb in mine:
            if wall - mine[0][0] >= shown + 20:
                shown = wall - mine[0][0]
                marks.append(f"{shown:.0f} s {kb / 1024:.1f}")
        line = f"  pid {pid} ({mine[-1][0] - mine[0][0]:.0f} s): {', '.join(marks)}, "
        line += f"last {mine[-1][1] / 1024:.1f} MB"
        early = next((kb for wall, kb in mine if wall >= mine[0][0] + 20), None)
        if early is not None and mine[-1][0] - mine[0][0] >= 60:
            growth[pid] = (mine[-1][1] - early) / 1024
            line += f"; after warm-up {growth[pid]:+.1f} MB (limit +{RSS_GROWTH_MB:g} MB)"
        lines.append(line)
    return "\n".join(lines), growth


def test_a_trading_day_of_faults_loses_no_signal(tmp_path, monkeypatch):
    history_from = market_epoch(DAY, "08:10")
    live_from = market_epoch(DAY, "09:10")
    opens, closes = market_epoch(DAY, "09:30"), market_epoch(DAY, "16:00")
    history, live = day_bars(SYMBOLS, history_from=history_from, live_from=live_from,
                             opens=opens, closes=closes, seed=SEED)  # fmt: skip
    faults = fault_schedule(list(SYMBOLS), first=opens + 300, last=closes - 900, seed=SEED,
                            client_id=CLIENT_ID)  # fmt: skip
    daily = next(f for f in faults if f.kind == "daily_restart")
    # The restart happens at the time the settings say, so the engine can tell it apart.
    services.settings_update(ib_restart_time=ny_time(daily.at)[:5], ib_next_client_id=False)
    rule = make_rule(name="Soak MA", definition=SOAK_RULE)
    watchlist = make_watchlist(name="Soak five", symbols=list(SYMBOLS))

    clock = SessionClock(t0=time.time(), epoch=live_from, speed=SPEED)
    monkeypatch.setenv("SCALP_TEST_CLOCK", clock.value)  # the fake TWS runs on it too
    script = {"symbols": [gateway_symbol(s, rows) for s, rows in history.items()]}
    gw = Gateway(script, workdir=tmp_path).start()
    workers = Workers(tmp_path, rule, watchlist, gw, clock)
    day = Day(clock, gw.control_port, live, faults, worker_pid=workers.pid,
              kill_worker=workers.kill, start_worker=workers.start)  # fmt: skip
    began = time.monotonic()
    try:
        workers.start()
        day.start()
        # Streaming all five before the open: from there on every bar is live to it.
        wait_until(
            lambda: (s := engine_state()) and s.state == "running"
            and len(gw.call("state")["subscriptions"]) >= len(SYMBOLS),
            timeout=clock.wall(opens - 60) - time.time(),
            what="the worker streaming all five symbols a minute before the open",
        )  # fmt: skip
        day.join(timeout=clock.wall(closes) - time.time() + 60)
        assert not day.errors, day.errors
        rows = [r for rows in history.values() for r in rows] + day.pushed
        expected = replay_signals(tmp_path, rule, rows, after=live_from)
        assert len(day.pushed) == sum(len(r) for r in live.values())
        with contextlib.suppress(AssertionError):  # compared below, the difference shown
            wait_until(lambda: stored_signals() == expected, timeout=60,
                       what="the stored signals to equal replay's")  # fmt: skip
        gateway = gw.call("state")
    finally:
        day.stop()
        code = stop_worker(workers.current) if workers.current is not None else None
        gw.stop()
    wall = time.monotonic() - began

    lines = story(clock)
    rss_table, growth = rss_figures(day.rss)
    stored = stored_signals()
    print(
        f"\nSoak: {len(SYMBOLS)} symbols, {DAY} 09:30-16:00 New York at {SPEED:g}x, "
        f"{wall:.0f} s wall, {len(day.pushed):,} bars pushed (at most {day.max_lag:.2f} s "
        f"after their close), {len(expected):,} replay signals, {len(stored):,} stored"
    )
    print("faults (market time, New York):")
    for fault in faults:
        print(f"  {ny_time(fault.at)} {fault.describe()}")
    print(f"worker RSS:\n{rss_table}")
    marks = [0, *day.history_per_worker, gateway["history_requests"]]
    per_worker = [b - a for a, b in itertools.pairwise(marks)]
    dead = sum(s["muted"] for s in gateway["subscriptions"])
    print(f"gateway: {gateway['connect_count']} connections, {gateway['subscribe_count']} "
          f"subscriptions, {gateway['history_requests']} history requests (per worker "
          f"process: {per_worker}; IB allows 60 in 10 minutes), {dead} dead ones open")  # fmt: skip
    print(f"engine events log ({len(lines)} lines):")
    print("\n".join(f"  {line}" for line in lines))

    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        print(f"not stored, per 15 minutes: {by_bucket(missing)}")
        print(f"stored but not replay's, per 15 minutes: {by_bucket(extra)}")
    assert stored == expected, (
        f"{len(missing)} replay signals not stored (first {missing[:5]}), {len(extra)} stored "
        f"that replay has not (first {extra[:5]})\n{workers.logs()}"
    )
    assert len(expected) >= 500, "the rule must fire all day long"
    assert code == 0, workers.logs()
    assert workers.kills == 2
    assert len(growth) >= 2, f"two worker processes must run a minute or more\n{rss_table}"
    assert max(growth.values()) < RSS_GROWTH_MB, f"the worker's RSS grew\n{rss_table}"
    # A dead subscription left open would hold one of the account's market data lines.
    subscriptions = sorted((s["symbol"], s["muted"]) for s in gateway["subscriptions"])
    assert subscriptions == sorted((symbol, False) for symbol in SYMBOLS), (
        f"one live subscription per symbol at the close, none dead: {subscriptions}"
    )
    expected_story = [("start", "Loading history for")]
    for fault in faults:
        said = story_expectations(fault.kind, fault.symbols)
        expected_story += [(f"{ny_time(fault.at)} {fault.describe()}, {label}", pattern)
                           for label, pattern in said]  # fmt: skip
    problem = in_order(lines, expected_story)
    assert problem is None, f"the story misses fault {problem}"
