"""Long IB warm-ups (higher-timeframe operands): several history requests walking back with
``endDateTime``, gaps jumped, bars merged in order, IB's pacing kept, and a notice when IB's
pacing or IB's history cuts the warm-up short. The real IB library against the fake TWS,
which answers a request breaking IB's pacing rules with error 162, as TWS does.

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import time

import pytest

from engine.core.bars import Bar
from engine.feeds.base import StatusEvent
from engine.feeds.ib import IBFeed
from engine.feeds.ib.pacing import WARMUP_REQUESTS, warmup_budget
from tests.engine.feeds.support import FeedRun, make_bars, minute_floor
from tests.faketws import FakeTWS, parse_end_time

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]

HOUR = 3600
LONG_WAIT = 30.0  # a warm-up of dozens of paced requests takes seconds, not minutes


def as_bars(symbol: str, rows, seconds: int = 5) -> list[Bar]:
    return [Bar(symbol, t, seconds, o, h, low, c, v) for t, o, h, low, c, v in rows]


def make_feed(gw: FakeTWS) -> IBFeed:
    return IBFeed(host="127.0.0.1", port=gw.port, client_id=17, connect_timeout=3,
                  max_backoff=0.5)  # fmt: skip


async def started(history: dict[str, dict[int, list]], *, now: float | None = None) -> FakeTWS:
    """A fake TWS enforcing IB's pacing, with ``history``; ``now`` fixes the gateway's clock
    (where a request without an end time ends) so that windows fall on known bars."""
    gw = FakeTWS() if now is None else FakeTWS(now=lambda: now)
    gw.enforce_pacing = True
    for symbol, bars in history.items():
        gw.add_symbol(symbol, history=bars)
    return await gw.start()


def walk_ends(gw: FakeTWS, bar_size: str) -> list[float]:
    """The explicit end times of the requests for ``bar_size`` bars, in the order sent."""
    return [parse_end_time(str(r["end"]), 0) for r in gw.history_log
            if r["bar_size"] == bar_size and r["end"]]  # fmt: skip


def hour_floor(t: float) -> int:
    return int(t) - int(t) % HOUR


def progress(run: FeedRun, symbol: str) -> list[str]:
    return [e.message for e in run.statuses("notice")
            if e.symbol == symbol and "bars so far" in e.message]  # fmt: skip


async def test_a_long_five_second_warm_up_walks_back_across_the_night():
    t0 = hour_floor(time.time())  # bars end at a whole hour: each window holds whole hours
    today = make_bars(t0 - 2 * HOUR, 1440, price=190.0)  # two hours up to t0
    yesterday = make_bars(t0 - 13 * HOUR, 2160, price=180.0)  # three hours, ending 8 h before
    gw = await started({"AAPL": {5: yesterday + today}}, now=t0)
    try:
        run = FeedRun(make_feed(gw), ["AAPL"], warmup_bars=3000)
        await run.wait_for(lambda: bool(run.statuses("running")), timeout=LONG_WAIT)

        assert run.bars("AAPL", warmup=True) == as_bars("AAPL", (yesterday + today)[-3000:])
        assert gw.pacing_violations() == []
        requests = [(r["bar_size"], r["duration"]) for r in gw.history_log]
        assert requests == [
            ("5 secs", "3600 S"),  # the last hour, up to now
            ("5 secs", "3600 S"),  # the hour before, ending at its first bar
            ("5 secs", "3600 S"),  # the night: no bars
            ("1 hour", "30 D"),  # the map of the hours with bars
            ("5 secs", "3600 S"),  # yesterday's last hour
            ("5 secs", "3600 S"),
            ("5 secs", "3600 S"),  # the 120 bars still missing, and more
        ]
        assert gw.history_log[0]["end"] == ""
        ends = walk_ends(gw, "5 secs")
        assert ends == [t0 - HOUR, t0 - 2 * HOUR, t0 - 10 * HOUR, t0 - 11 * HOUR, t0 - 12 * HOUR]
        assert walk_ends(gw, "1 hour") == [t0 - 3 * HOUR]
        assert progress(run, "AAPL") == [
            "AAPL: warm-up 2 of 5 history requests (720 of 3,000 bars so far)…",
            "AAPL: warm-up 3 of 5 history requests (1,440 of 3,000 bars so far)…",
            "AAPL: warm-up 4 of 7 history requests (1,440 of 3,000 bars so far)…",
            "AAPL: warm-up 5 of 7 history requests (1,440 of 3,000 bars so far)…",
            "AAPL: warm-up 6 of 7 history requests (2,160 of 3,000 bars so far)…",
            "AAPL: warm-up 7 of 7 history requests (2,880 of 3,000 bars so far)…",
        ]
        assert [e.message for e in run.statuses("notice") if e.symbol] == progress(run, "AAPL")

        await gw.wait_subscribed("AAPL")
        await gw.push_bar("AAPL", t0, 191.0, 191.5, 190.5, 191.25, 900)
        assert await run.wait_bars("AAPL", 1) == [Bar("AAPL", t0, 5, 191.0, 191.5, 190.5,
                                                      191.25, 900)]  # fmt: skip
        await run.close()
    finally:
        await gw.stop()


async def test_five_symbols_share_ibs_pacing_and_are_told_what_was_loaded():
    symbols = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]
    t0 = minute_floor(time.time())
    history = {s: make_bars(t0 - 10 * HOUR, 7200, price=100.0 + 50 * i)
               for i, s in enumerate(symbols)}  # fmt: skip
    gw = await started({s: {5: rows} for s, rows in history.items()}, now=t0)
    try:
        run = FeedRun(make_feed(gw), symbols, warmup_bars=144_721)  # MA200@1h on 5 s bars

        def loaded() -> list[StatusEvent]:
            return [e for e in run.statuses("notice") if "loaded" in e.message]

        await run.wait_for(lambda: len(loaded()) == 5, timeout=LONG_WAIT)
        budget = warmup_budget(5)
        assert budget == 9 and budget * 5 <= WARMUP_REQUESTS
        assert gw.pacing_violations() == []
        assert len(gw.history_log) == 5 * budget
        for symbol in symbols:
            warm = run.bars(symbol, warmup=True)
            assert warm == as_bars(symbol, history[symbol][-budget * 720 :])
            assert [r["symbol"] for r in gw.history_log].count(symbol) == budget

        # After "running": the state's message shows it, not the next status at once.
        assert run.events.index(loaded()[0]) > run.events.index(run.statuses("running")[0])
        assert [e.symbol for e in loaded()] == symbols
        assert loaded()[0].message == (
            "AAPL: warm-up loaded 9 hours of history (6,480 of the 144,721 bars the rules "
            "need); IB's pacing allows 9 history requests per symbol with 5 symbols. "
            "Longer-timeframe indicators fill from live bars."
        )
        assert not any(e.permanent for e in loaded())
        assert progress(run, "MSFT") == [
            f"MSFT: warm-up {k} of 9 history requests ({(k - 1) * 720:,} of 144,721 bars so far)…"
            for k in range(2, 10)
        ]
        await run.close()
    finally:
        await gw.stop()


async def test_a_one_minute_warm_up_jumps_the_weekend_and_says_when_history_runs_out():
    t0 = hour_floor(time.time() - 1200)  # sessions on whole hours: no window is spent on
    day = 16 * HOUR  # 04:00-20:00: a session with extended hours, 960 minutes
    sessions = [make_bars(t0 - back - day, 960, seconds=60, price=100.0 + back / HOUR)
                for back in (4 * 24 * HOUR, 3 * 24 * HOUR, 24 * HOUR, 0)]  # fmt: skip
    minutes = [row for session in sessions for row in session]
    gw = await started({"AAPL": {60: minutes}})
    try:
        run = FeedRun(make_feed(gw), ["AAPL"], bar_seconds=60, warmup_bars=12_061)
        await run.wait_for(lambda: any("loaded" in e.message for e in run.statuses("notice")))

        assert run.bars("AAPL", warmup=True) == as_bars("AAPL", minutes, 60)
        assert gw.pacing_violations() == []
        assert progress(run, "AAPL")[0] == (
            "AAPL: warm-up 2 of 9 history requests (960 of 12,061 bars so far)…"
        )
        loaded = next(e for e in run.statuses("notice") if "loaded" in e.message)
        assert loaded.message == (
            "AAPL: warm-up loaded 64 hours of history (3,840 of the 12,061 bars the rules "
            "need); IB has no older bars. Longer-timeframe indicators fill from live bars."
        )
        asked = [
            (r["bar_size"], r["duration"]) for r in gw.history_log if r["bar_size"] != "5 secs"
        ]
        assert asked == [
            ("1 min", "86400 S"),  # today (IB's longest for 1-minute bars: 1 D)
            ("1 min", "86400 S"),  # yesterday
            ("1 min", "86400 S"),  # the weekend: no bars
            ("1 hour", "30 D"),
            ("1 min", "86400 S"),  # the day before the weekend
            ("1 min", "86400 S"),  # and the one before
        ]
        ends = walk_ends(gw, "1 min")
        assert ends == [t0 - day, t0 - 40 * HOUR, t0 - 72 * HOUR, t0 - 96 * HOUR]
        await run.close()
    finally:
        await gw.stop()


async def test_an_error_in_the_middle_keeps_the_bars_so_far_and_says_why():
    t0 = hour_floor(time.time())
    rows = make_bars(t0 - 4 * HOUR, 2880, price=190.0)
    gw = await started({"AAPL": {5: rows}}, now=t0)
    gw.history_delay = 0.3  # time to refuse the third request before it is sent
    try:
        run = FeedRun(make_feed(gw), ["AAPL"], warmup_bars=3000)
        await gw.wait_until(lambda: len(gw.history_log) == 2)
        # Not a pacing violation (that one is waited out and asked again): an error that
        # asking again does not help.
        gw.deny_history("AAPL", 322, "Error processing request:-'bX' : cause - Duplicate ticker id")
        await run.wait_for(lambda: any("loaded" in e.message for e in run.statuses("notice")))
        assert run.bars("AAPL", warmup=True) == as_bars("AAPL", rows[-1440:])
        assert len(gw.history_log) == 3
        loaded = next(e for e in run.statuses("notice") if "loaded" in e.message)
        assert loaded.message.startswith(
            "AAPL: warm-up loaded 2 hours of history (1,440 of the 3,000 bars the rules need); "
            "then IB answered: IB could not process a request: Error processing request"
        )
        assert loaded.message.endswith("Longer-timeframe indicators fill from live bars.")
        await run.close()
    finally:
        await gw.stop()


async def test_short_warm_ups_still_take_one_request():
    t0 = minute_floor(time.time()) - 60
    gw = await started({"AAPL": {5: make_bars(t0 - HOUR, 720, price=190.0)}})
    try:
        run = FeedRun(make_feed(gw), ["AAPL"], warmup_bars=200)
        await run.wait_status("running")
        assert len(run.bars("AAPL", warmup=True)) == 200
        assert [(r["end"], r["duration"]) for r in gw.history_log] == [("", "2060 S")]
        assert progress(run, "AAPL") == []
        assert [e for e in run.statuses("notice") if e.symbol] == []
        await run.close()
    finally:
        await gw.stop()
