"""`runengine --feed ib` end to end: the real worker process against the fake TWS running as
a separate process (warm-up, live bars, per-symbol IB errors, gateway restarts, clean stop,
TWS not running yet). Signals must equal what `replay` computes over the same bars."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from engine.models import EngineState
from signals.models import Signal
from tests.conftest import free_port
from tests.engine.helpers import (
    Gateway,
    engine_state,
    gateway_symbol,
    interleave,
    replay_split,
    start_worker,
    stop_worker,
    trend_bars,
    wait_processed,
    wait_until,
)
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20.0
MA_RULE = {
    "logic": "AND", "cooldown_sec": 15, "trigger": "level",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                   {"left": "MA5", "op": ">", "right": "MA10"}],
}  # fmt: skip
EVERY_BAR = {
    "logic": "AND", "cooldown_sec": 0,
    "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
}  # fmt: skip
HISTORY = 50  # two whole sawtooth periods, ending after a fall longer than the cooldown
TF_RULE = {
    "logic": "AND", "cooldown_sec": 15, "trigger": "level",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA20@5m"},
                   {"left": "MA5", "op": ">", "right": "MA10"}],
}  # fmt: skip
TF_WARMUP = 20 * 60 + 60 + 1  # 5-second bars for MA20@5m (a partial first bucket), + 1
TF_HISTORY = 2000  # 80 sawtooth periods: more than two 1-hour history requests hold


def sawtooth(n: int, base: float) -> list[float]:
    """Rises for 15 bars, falls for 10, repeated: the MA rule fires on each rise."""
    out, price = [], base
    for i in range(n):
        price += 0.05 if i % 25 < 15 else -0.07
        out.append(round(price, 2))
    return out


def series(
    symbol: str, base: float, live: int, history: int = HISTORY
) -> tuple[list[tuple], list[tuple]]:
    """History then live 5-second bars: live bars start 20 minutes ago at ``start`` (IB backfill
    reaches an hour back; bars in the future would count as still forming)."""
    start = int(time.time()) // 60 * 60 - 1200
    rows = trend_bars(symbol, start - history * 5, sawtooth(history + live, base))
    return rows[:history], rows[history:]


def symbols_script(history: dict[str, list[tuple]], **extra) -> dict:
    return {"symbols": [gateway_symbol(s, rows) for s, rows in history.items()], **extra}


def ib_worker(tmp_path, gw: Gateway, rule, watchlist, *extra: str, port: int | None = None):
    args = ["--feed", "ib", "--rule", str(rule.pk), "--watchlist", watchlist.name, "--start"]
    return start_worker(
        *args, *extra, log_path=tmp_path / "worker.log",
        SCALP_IB_HOST="127.0.0.1", SCALP_IB_PORT=str(port or gw.port), SCALP_IB_CLIENT_ID="17",
    )  # fmt: skip


def push(gw: Gateway, rows: list[tuple]) -> None:
    for t, o, h, low, c, v, symbol in rows:
        reply = gw.call("push_bar", symbol=symbol, time=t, open=o, high=h, low=low, close=c,
                        volume=v)  # fmt: skip
        assert reply["delivered"] == 1, f"{symbol} {t} reached no subscription"


def running() -> bool:
    return (state := engine_state()) is not None and state.state == "running"


def stored_signals() -> list[tuple]:
    return sorted(
        (s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), s.symbol, s.price, s.rule_id)
        for s in Signal.objects.all()
    )


@pytest.fixture
def state_log():
    """Every write of the engine state (state + message), in order, recorded by a trigger
    (SQLite's, or PostgreSQL's in plpgsql): transient states (warming_up lasts milliseconds)
    can't be missed by polling."""
    table = EngineState._meta.db_table
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "CREATE TABLE test_state_log (id serial PRIMARY KEY, state text, message text)"
            )
            cur.execute(
                "CREATE FUNCTION test_state_log_row() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN INSERT INTO test_state_log (state, message) "
                "VALUES (NEW.state, NEW.message); RETURN NEW; END $$"
            )
            cur.execute(
                f"CREATE TRIGGER test_state_log_trigger AFTER UPDATE OF state ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_state_log_row()"
            )
        else:
            cur.execute("CREATE TABLE test_state_log (id INTEGER PRIMARY KEY, state, message)")
            cur.execute(
                f"CREATE TRIGGER test_state_log_trigger AFTER UPDATE OF state ON {table} "
                "BEGIN INSERT INTO test_state_log (state, message) "
                "VALUES (NEW.state, NEW.message); END"
            )

    def read() -> list[tuple[str, str]]:
        with connection.cursor() as cur:
            cur.execute("SELECT state, message FROM test_state_log ORDER BY id")
            return cur.fetchall()

    try:
        yield read
    finally:
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute(f"DROP TRIGGER IF EXISTS test_state_log_trigger ON {table}")
                cur.execute("DROP FUNCTION IF EXISTS test_state_log_row()")
            else:
                cur.execute("DROP TRIGGER IF EXISTS test_state_log_trigger")
            cur.execute("DROP TABLE IF EXISTS test_state_log")


def collapsed(states: list[str]) -> list[str]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


@pytest.fixture
def gateways(tmp_path):
    started: list[Gateway] = []

    def make(script: dict, port: int = 0) -> Gateway:
        gw = Gateway(script, workdir=tmp_path, port=port)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def finish(proc, tmp_path) -> None:
    assert stop_worker(proc) == 0, (tmp_path / "worker.log").read_text()


def test_warm_up_then_live_bars_store_exactly_the_replay_signals(tmp_path, gateways, state_log):
    aapl_hist, aapl_live = series("AAPL", 190.0, 100)
    msft_hist, msft_live = series("MSFT", 410.0, 100)
    gw = gateways(symbols_script({"AAPL": aapl_hist, "MSFT": msft_hist})).start()
    rule = make_rule(name="Fast MA", definition=MA_RULE)
    watchlist = make_watchlist(name="IB pair", symbols=["AAPL", "MSFT"])
    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        wait_until(running, timeout=WAIT, what="running")
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        gw.call("wait_subscribed", symbol="MSFT", timeout=WAIT)
        assert not Signal.objects.exists(), "history bars must never emit"
        live = interleave(aapl_live, msft_live)
        push(gw, live)
        wait_processed(live)
        state = engine_state()
        assert state.state == "running" and state.is_locked
    finally:
        finish(proc, tmp_path)

    expected, in_warmup = replay_split(tmp_path, rule, aapl_hist + msft_hist, live)
    assert len(expected) >= 10 and in_warmup, "the bars must fire in both parts"
    assert stored_signals() == expected, "worker and replay disagree"

    log = state_log()
    assert collapsed([s for s, _ in log]) == [
        "idle", "connecting", "warming_up", "running", "stopping", "idle"
    ]  # fmt: skip
    messages = dict(reversed(log))  # first message of each state
    assert messages["connecting"].startswith("Starting: rule “Fast MA” on AAPL MSFT")
    where = f"127.0.0.1:{gw.port}"
    assert f"Connecting to TWS / IB Gateway at {where}…" in [m for _, m in log]
    assert messages["warming_up"] == "Loading history for AAPL, MSFT…"
    assert messages["running"] == f"Receiving 5-second bars for AAPL, MSFT from TWS at {where}."
    history = gw.call("state")
    assert history["subscribe_count"] == 2 and history["connect_count"] == 1


def test_a_higher_timeframe_rule_warms_up_over_several_history_requests(
    tmp_path, gateways, state_log
):
    aapl_hist, aapl_live = series("AAPL", 190.0, 100, history=TF_HISTORY)
    msft_hist, msft_live = series("MSFT", 410.0, 100, history=TF_HISTORY)
    script = symbols_script({"AAPL": aapl_hist, "MSFT": msft_hist}, enforce_pacing=True)
    gw = gateways(script).start()
    rule = make_rule(name="Above the 5-minute MA", definition=TF_RULE)
    watchlist = make_watchlist(name="IB pair", symbols=["AAPL", "MSFT"])
    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        wait_until(running, timeout=WAIT, what="running")
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        gw.call("wait_subscribed", symbol="MSFT", timeout=WAIT)
        assert not Signal.objects.exists(), "history bars must never emit"
        live = interleave(aapl_live, msft_live)
        push(gw, live)
        wait_processed(live)
    finally:
        finish(proc, tmp_path)

    # The worker saw only the last TF_WARMUP history bars; replay sees them all. They agree
    # only if the warm-up held every bar the 5-minute MA needs.
    expected, in_warmup = replay_split(tmp_path, rule, aapl_hist + msft_hist, live)
    assert len(expected) >= 10 and in_warmup, "the bars must fire in both parts"
    assert stored_signals() == expected, "worker and replay disagree"
    gateway = gw.call("state")
    # The first request (the last hour) holds 40 minutes of history, the last 20 being live:
    # each symbol takes three requests for its 1,261 bars.
    assert gateway["history_requests"] == 6 and gateway["pacing_violations"] == []
    warming = [m for s, m in state_log() if s == "warming_up"]
    assert warming[0] == "Loading history for AAPL, MSFT…"
    for symbol in ("AAPL", "MSFT"):
        steps = [m for m in warming if m.startswith(f"{symbol}: warm-up ")]
        assert [m.split(" history requests")[0] for m in steps] == [
            f"{symbol}: warm-up 2 of 3",
            f"{symbol}: warm-up 3 of 3",
        ], warming
        assert steps[-1].endswith(f" of {TF_WARMUP:,} bars so far)…")


def test_unknown_symbol_is_explained_and_the_others_keep_running(tmp_path, gateways):
    aapl_hist, aapl_live = series("AAPL", 190.0, 3)
    gw = gateways(symbols_script({"AAPL": aapl_hist})).start()
    rule = make_rule(name="Every bar", definition=EVERY_BAR)
    watchlist = make_watchlist(name="Typo", symbols=["ZZZZ", "AAPL"])
    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        state = wait_until(
            lambda: (s := engine_state()) and s.state == "running" and "ZZZZ" in s.message and s,
            timeout=WAIT, what="running with a message about ZZZZ",
        )  # fmt: skip
        assert "ZZZZ: IB doesn't know this symbol as a stock" in state.message
        assert "Check the ticker" in state.message and "other symbols continue" in state.message
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        push(gw, aapl_live)
        wait_until(lambda: Signal.objects.count() == 3, timeout=WAIT, what="3 AAPL signals")
        assert set(Signal.objects.values_list("symbol", flat=True)) == {"AAPL"}
        assert [s["symbol"] for s in gw.call("state")["subscriptions"]] == ["AAPL"]
        assert proc.poll() is None and engine_state().state == "running"
    finally:
        finish(proc, tmp_path)


@pytest.mark.parametrize("code", [354, 420, 10089])
def test_market_data_permission_error_on_one_symbol(tmp_path, gateways, code):
    aapl_hist, aapl_live = series("AAPL", 190.0, 3)
    msft_hist, _ = series("MSFT", 410.0, 0)
    script = symbols_script({"AAPL": aapl_hist, "MSFT": msft_hist}, deny_realtime={"MSFT": code})
    gw = gateways(script).start()
    rule = make_rule(name="Every bar", definition=EVERY_BAR)
    watchlist = make_watchlist(name="No MSFT data", symbols=["AAPL", "MSFT"])
    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        state = wait_until(
            lambda: (s := engine_state()) and s.state == "running" and "MSFT:" in s.message and s,
            timeout=WAIT, what="running with a message about MSFT",
        )  # fmt: skip
        assert f"IB error {code}" in state.message and "market data" in state.message
        assert "remove the symbol" in state.message
        assert "other symbols continue" in state.message
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        push(gw, aapl_live)
        wait_until(lambda: Signal.objects.count() == 3, timeout=WAIT, what="3 AAPL signals")
        assert set(Signal.objects.values_list("symbol", flat=True)) == {"AAPL"}
        assert proc.poll() is None and engine_state().state == "running"
    finally:
        finish(proc, tmp_path)


def test_gateway_process_killed_and_restarted_three_times(tmp_path, gateways, state_log):
    live = 3 * (10 + 6) + 10
    aapl_hist, aapl_rows = series("AAPL", 190.0, live)
    msft_hist, msft_rows = series("MSFT", 410.0, live)
    history = {"AAPL": aapl_hist, "MSFT": msft_hist}
    gw = gateways(symbols_script(history)).start()
    rule = make_rule(name="Fast MA", definition=MA_RULE)
    watchlist = make_watchlist(name="IB pair", symbols=["AAPL", "MSFT"])
    source = {"AAPL": iter(aapl_rows), "MSFT": iter(msft_rows)}
    delivered = {"AAPL": [], "MSFT": []}  # everything the gateway has, live or as history
    outage: set[str] = set()  # close times of the bars only a backfill can bring

    def take(n: int) -> list[tuple]:
        rows = []
        for symbol, it in source.items():
            batch = [next(it) for _ in range(n)]
            delivered[symbol] += batch
            rows += batch
        return interleave(rows)

    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        for cycle in range(3):
            gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
            gw.call("wait_subscribed", symbol="MSFT", timeout=WAIT)
            wait_until(running, timeout=WAIT, what="running")
            rows = take(10)
            push(gw, rows)
            wait_processed(rows)
            gw.kill()
            missed = take(6)  # bars IB recorded while TWS was down: the worker must backfill
            outage |= {time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[0] + 5)) for r in missed}
            restarted = {s: history[s] + delivered[s] for s in history}
            gw.start(symbols_script(restarted))
            wait_until(
                lambda c=cycle: sum(s == "reconnecting" for s in collapsed(
                    [s for s, _ in state_log()])) == c + 1,
                timeout=WAIT, what=f"reconnect {cycle + 1}",
            )  # fmt: skip
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        gw.call("wait_subscribed", symbol="MSFT", timeout=WAIT)
        rows = take(10)
        push(gw, rows)
        wait_processed(rows)
        assert engine_state().state == "running"
    finally:
        finish(proc, tmp_path)

    all_bars = delivered["AAPL"] + delivered["MSFT"]
    assert sorted(all_bars) == sorted(aapl_rows + msft_rows)
    expected, _ = replay_split(tmp_path, rule, aapl_hist + msft_hist, all_bars)
    stored = stored_signals()
    assert len(expected) >= 10
    assert {t for t, *_ in expected} & outage, "some signals must come from backfilled bars"
    assert stored == expected, "every delivered bar processed once, as replay does"
    assert Signal.objects.count() == len(set(stored)) == len(expected)
    messages = [m for _, m in state_log()]
    lost = f"Lost the connection to TWS / IB Gateway at 127.0.0.1:{gw.port}; reconnecting."
    assert messages.count(lost) == 3
    assert collapsed([s for s, _ in state_log()]).count("running") == 4


def test_sigterm_cancels_subscriptions_and_releases_the_locks(tmp_path, gateways, state_log):
    aapl_hist, aapl_live = series("AAPL", 190.0, 1)
    msft_hist, msft_live = series("MSFT", 410.0, 1)
    gw = gateways(symbols_script({"AAPL": aapl_hist, "MSFT": msft_hist})).start()
    rule = make_rule(name="Every bar", definition=EVERY_BAR)
    watchlist = make_watchlist(name="IB pair", symbols=["AAPL", "MSFT"])
    proc = ib_worker(tmp_path, gw, rule, watchlist)
    try:
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        gw.call("wait_subscribed", symbol="MSFT", timeout=WAIT)
        wait_until(running, timeout=WAIT, what="running")
        push(gw, aapl_live + msft_live)
        wait_until(lambda: Signal.objects.count() == 2, timeout=WAIT, what="2 signals")
        assert engine_state().is_locked
    finally:
        code = stop_worker(proc)
    assert code == 0, (tmp_path / "worker.log").read_text()
    gw.call("wait_cancelled", symbol="AAPL", timeout=WAIT)
    gw.call("wait_cancelled", symbol="MSFT", timeout=WAIT)
    after = gw.call("state")
    assert after["cancel_count"] == 2 and after["subscriptions"] == []
    state = engine_state()
    assert state.state == "idle" and state.message == "The engine worker stopped."
    assert state.run_rule_ids == [] and state.run_watchlist_id is None and not state.is_locked
    assert collapsed([s for s, _ in state_log()])[-3:] == ["running", "stopping", "idle"]


def test_tws_not_running_is_explained_and_retried_until_it_appears(tmp_path, gateways, state_log):
    aapl_hist, aapl_live = series("AAPL", 190.0, 2)
    port = free_port()
    gw = gateways(symbols_script({"AAPL": aapl_hist}), port=port)
    rule = make_rule(name="Every bar", definition=EVERY_BAR)
    watchlist = make_watchlist(name="Solo", symbols=["AAPL"])
    proc = ib_worker(tmp_path, gw, rule, watchlist, port=port)
    try:
        unreachable = f"Can't reach TWS / IB Gateway at 127.0.0.1:{port} — is it running"

        def retries() -> list[str]:
            return [m for s, m in state_log() if s == "connecting" and unreachable in m]

        wait_until(lambda: len(retries()) >= 3, timeout=WAIT, what="three failed connects")
        assert "with the API enabled (Configure → API → Settings)?" in retries()[0]
        assert retries()[0].endswith("Retrying in 0.5 s.")
        assert retries()[2].endswith("Retrying in 2 s.")
        state = engine_state()
        assert state.state == "connecting" and unreachable in state.message
        assert state.desired == "running" and proc.poll() is None
        gw.start()
        wait_until(running, timeout=WAIT, what="running")
        gw.call("wait_subscribed", symbol="AAPL", timeout=WAIT)
        push(gw, aapl_live)
        wait_until(lambda: Signal.objects.count() == 2, timeout=WAIT, what="2 signals")
    finally:
        finish(proc, tmp_path)
