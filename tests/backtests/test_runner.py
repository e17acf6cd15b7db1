"""The worker's backtest runner: over an uploaded CSV and over stored bars its signals,
outcomes and statistics are the ``backtest`` command's on the same data; cancel keeps what
was found; a run a dead worker left running is failed at start; the runner's task runs a
queued run in a thread while its loop stays free."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from backtests import runner, services
from backtests.models import BacktestRun
from bars.services import bars_store
from engine.core.backtest import backtest_events
from engine.core.bars import Bar
from tests.factories import make_rule

T0 = int(datetime(2026, 11, 30, 14, 30, tzinfo=UTC).timestamp())
SYMBOLS = ["AAPL", "MSFT"]
SELL = {"logic": "AND", "side": "sell", "cooldown_sec": 30, "trigger": "edge",
        "conditions": [{"left": "PRICE", "op": "<", "right": "EMA9"}]}  # fmt: skip


def make_bars(count: int, seed: int = 7) -> list[Bar]:
    """``count`` 5-second bars per symbol, a random walk, in time then symbol order."""
    rnd = random.Random(seed)
    price = {s: 100.0 + 50 * i for i, s in enumerate(SYMBOLS)}
    out = []
    for i in range(count):
        for symbol in SYMBOLS:
            o = price[symbol]
            c = round(o * (1 + rnd.gauss(0, 0.002)), 2)
            h, lo = round(max(o, c) + 0.05, 2), round(min(o, c) - 0.05, 2)
            out.append(Bar(symbol, T0 + 5 * i, 5, o, h, lo, c, 100 + i))
            price[symbol] = c
    return out


def write_csv(path, bars: list[Bar]) -> None:
    lines = ["symbol,time,open,high,low,close,volume"]
    lines += [f"{b.symbol},{b.time},{b.open},{b.high},{b.low},{b.close},{b.volume:g}" for b in bars]
    path.write_text("\n".join(lines) + "\n")


def rules():
    return [make_rule("Up"), make_rule("Down", SELL)]


def create(source: str, rule_rows, **extra) -> BacktestRun:
    return services.backtest_create(
        rule_ids=[r.pk for r in rule_rows], symbols=SYMBOLS, start=datetime.fromtimestamp(T0, UTC),
        end=datetime.fromtimestamp(T0, UTC) + timedelta(days=1), source=source,
        horizons="1m,5m", bar_seconds=5, **extra,
    )  # fmt: skip


def expected(path, run: BacktestRun) -> tuple[list[dict], list[dict]]:
    lines = list(backtest_events(path, runner.rule_defs(run), bar_seconds=5, horizons=(60, 300)))
    return [e for e in lines if e["event"] == "signal"], [e for e in lines if e["event"] == "stats"]


def stored_events(run: BacktestRun) -> list[dict]:
    return [row.event for row in run.signals.order_by("seq")]


def same_stats(got: list[dict], want: list[dict]) -> None:
    assert [(s["rule_id"], s["signals"], s["horizons"]) for s in got] == [
        (s["rule_id"], s["signals"], s["horizons"]) for s in want
    ]


@pytest.mark.django_db
def test_csv_and_stored_runs_equal_the_backtest_command(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    bars = make_bars(1500)
    path = tmp_path / "bars.csv"
    write_csv(path, bars)
    rule_rows = rules()
    csv_run = create("csv", rule_rows, upload=path.read_bytes(), upload_name="bars.csv")
    assert runner.run_next() == csv_run.pk
    csv_run.refresh_from_db()
    want_signals, want_stats = expected(path, csv_run)
    assert csv_run.state == "done", csv_run.error
    assert len(want_signals) > 10 and {e["side"] for e in want_signals} == {None, "sell"}
    assert stored_events(csv_run) == want_signals
    same_stats(csv_run.result["stats"], want_stats)
    assert sorted(csv_run.symbols) == SYMBOLS and csv_run.progress == 1.0
    assert csv_run.bars == len(bars)

    bars_store(bars)
    stored_run = create("stored", rule_rows)
    assert runner.run_next() == stored_run.pk
    stored_run.refresh_from_db()
    assert stored_run.state == "done", stored_run.error
    assert stored_run.bars == len(bars)
    assert stored_events(stored_run) == want_signals
    same_stats(stored_run.result["stats"], want_stats)
    # rule x symbol: the signals of each symbol add up to the rule's
    for line in stored_run.result["stats"]:
        assert sum(s["signals"] for s in line["symbols"].values()) == line["signals"]


@pytest.mark.django_db
def test_bad_file_and_empty_period_are_sentences(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    rule_rows = rules()
    text = b"symbol,time,open,high,low,close,volume\nAAPL,x,1,1,1,1,1\n"
    bad = create("csv", rule_rows, upload=text, upload_name="mine.csv")
    empty = create("stored", rule_rows)
    runner.run_next()
    runner.run_next()
    bad.refresh_from_db()
    empty.refresh_from_db()
    assert bad.state == "failed" and "mine.csv" in bad.error and str(tmp_path) not in bad.error
    assert empty.state == "failed" and empty.error.startswith("No bars of 5 s are stored for AAPL")


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["stored", "csv"])
def test_cancel_between_chunks_keeps_the_signals_found(settings, tmp_path, monkeypatch, source):
    settings.VAR_DIR = tmp_path
    bars = make_bars(4000)
    if source == "stored":
        bars_store(bars)
        run = create("stored", rules())
    else:
        write_csv(tmp_path / "bars.csv", bars)
        run = create("csv", rules(), upload=(tmp_path / "bars.csv").read_bytes())
    monkeypatch.setattr(runner, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(runner, "CHECK_BARS", 500)
    writes = []
    progress = services.backtest_progress

    def user_cancels_after_three_writes(**kwargs):
        writes.append(kwargs["progress"])
        if len(writes) == 3:
            services.backtest_cancel(run=BacktestRun.objects.get(pk=run.pk))
        return progress(**kwargs)

    monkeypatch.setattr(services, "backtest_progress", user_cancels_after_three_writes)
    runner.run_next()
    run.refresh_from_db()
    assert run.state == "cancelled" and "kept" in run.message
    # a file's bytes read and bars are known per block: a small file's only at its end
    assert source == "csv" or (0 < writes[-1] < 1 and 0 < run.bars < len(bars))
    assert 0 < run.signal_count == run.signals.count() < 2 * len(bars)
    # the statistics count the signals kept, per rule and per rule x symbol
    counted = [line["signals"] for line in run.result["stats"]]
    assert sum(counted) == run.signal_count
    assert all(sum(s["signals"] for s in line["symbols"].values()) == line["signals"]
               for line in run.result["stats"])  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_runner_task_fails_orphans_and_runs_queued_runs_off_the_loop(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    bars = make_bars(3000)
    bars_store(bars)
    rule_rows = rules()
    orphan = create("stored", rule_rows)
    services.backtest_claim_next()  # a worker took it, then died
    queued = create("stored", rule_rows)

    async def main() -> tuple[int, BacktestRun]:
        task = asyncio.create_task(runner.BacktestRunner(poll=0.1).run())
        ticks = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            ticks += 1  # the loop keeps turning while the run works in its thread
            state = await asyncio.to_thread(
                lambda: BacktestRun.objects.filter(pk=queued.pk).values_list("state", flat=True)[0]
            )
            if state not in ("queued", "running"):
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return ticks, await asyncio.to_thread(BacktestRun.objects.get, pk=queued.pk)

    ticks, done = asyncio.run(main())
    orphan.refresh_from_db()
    assert orphan.state == "failed" and orphan.error == services.WORKER_STOPPED
    assert done.state == "done" and done.bars == len(bars) and ticks > 5


@pytest.mark.django_db
def test_a_worker_stopping_mid_run_fails_it_with_a_sentence(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    bars_store(make_bars(3000))
    create("stored", rules())
    monkeypatch.setattr(runner, "CHECK_BARS", 500)
    stop = threading.Event()
    progress = services.backtest_progress

    def worker_stops_after_the_first_write(**kwargs):
        stop.set()
        return progress(**kwargs)

    monkeypatch.setattr(services, "backtest_progress", worker_stops_after_the_first_write)
    run = BacktestRun.objects.get(pk=runner.run_next(stop))
    assert run.state == "failed" and run.error == services.WORKER_STOPPED
    assert 0 < run.bars < 6000 and run.finished_at is not None


@pytest.mark.django_db
def test_windows_already_stored_are_not_downloaded_again():
    run = create("ib", rules())
    hour = T0 + 1800  # 15:00 UTC
    bars = make_bars(1800)  # 14:30 to 17:00
    bars_store([b for b in bars if b.symbol == "AAPL" and hour <= b.time < hour + 3600])
    bars_store([b for b in bars if b.symbol == "MSFT" and hour + 3600 <= b.time < hour + 5400])
    windows = [(hour, hour + 3600), (hour + 3600, hour + 7200)]
    # AAPL's first hour is whole; MSFT's second only half: asked again
    assert runner.Job(run, threading.Event()).covered(windows) == {("AAPL", hour)}
