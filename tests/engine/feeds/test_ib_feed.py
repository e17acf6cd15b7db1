"""The IB feed against the fake TWS, through the real IB client library (ib_async or ib_insync).

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from engine.core.bars import Bar
from engine.feeds.base import FeedError, StatusEvent
from engine.feeds.ib import IB_ERROR_MESSAGES, IBFeed, describe_ib_error, test_connection
from tests.engine.feeds.support import WAIT, FeedRun, make_bars

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]


def make_feed(gw, **options) -> IBFeed:
    options.setdefault("connect_timeout", 3)
    options.setdefault("max_backoff", 0.5)
    return IBFeed(host="127.0.0.1", port=gw.port, client_id=17, **options)


async def push(gw, symbol: str, bars) -> None:
    for bar in bars:
        await gw.push_bar(symbol, *bar)


def as_bar(symbol: str, row, seconds: int = 5) -> Bar:
    t, o, h, low, c, v = row
    return Bar(symbol, t, seconds, o, h, low, c, v)


def clock_at(target: datetime):
    """A clock running from ``target`` (a market-hours scenario) at real speed."""
    offset = target.timestamp() - time.time()
    return lambda: time.time() + offset


def next_weekday(weekday: int, hour: int) -> datetime:
    day = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    day += timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


async def test_warm_up_then_live_five_second_bars(gateway):
    t0 = gateway.t0
    run = FeedRun(make_feed(gateway), ["AAPL", "msft"], warmup_bars=20)
    await run.wait_status("running")
    states = [e.state for e in run.statuses() if e.state != "notice"]
    assert states == ["connecting", "warming_up", "running"]

    expected = [as_bar("AAPL", b) for b in make_bars(t0 - 500, 100, price=190.0)[-20:]]
    assert run.bars("AAPL", warmup=True) == expected
    assert len(run.bars("MSFT", warmup=True)) == 20
    assert all(b.seconds == 5 for b in run.bars(warmup=True))
    request = gateway.history_log[0]
    assert request["format_date"] == "2"
    assert request["bar_size"] == "5 secs"
    assert request["what_to_show"] == "TRADES"
    assert request["use_rth"] is False

    sub = await gateway.wait_subscribed("AAPL")
    await gateway.wait_subscribed("MSFT")
    assert (sub.what_to_show, sub.use_rth) == ("TRADES", False)
    live = make_bars(t0, 3, price=191.0)
    await push(gateway, "AAPL", live)
    await gateway.push_bar("MSFT", t0, 411.0, 411.5, 410.5, 411.25, 900)
    assert await run.wait_bars("AAPL", 3) == [as_bar("AAPL", b) for b in live]
    assert await run.wait_bars("MSFT", 1) == [Bar("MSFT", t0, 5, 411.0, 411.5, 410.5, 411.25, 900)]
    await run.close()


async def test_one_minute_bars_are_built_from_five_second_bars(gateway):
    t0 = gateway.t0
    run = FeedRun(make_feed(gateway), ["AAPL"], bar_seconds=60, warmup_bars=10)
    await run.wait_status("running")
    warm = run.bars("AAPL", warmup=True)
    assert warm == [
        as_bar("AAPL", b, 60) for b in make_bars(t0 - 1800, 30, seconds=60, price=189.0)[-10:]
    ]
    assert any(r["bar_size"] == "1 min" and r["format_date"] == "2" for r in gateway.history_log)

    await gateway.wait_subscribed("AAPL")
    minute = make_bars(t0, 12, price=192.0)
    await push(gateway, "AAPL", minute)
    (bar,) = await run.wait_bars("AAPL", 1)
    assert bar == Bar(
        "AAPL",
        t0,
        60,
        minute[0][1],
        max(b[2] for b in minute),
        min(b[3] for b in minute),
        minute[-1][4],
        sum(b[5] for b in minute),
    )
    await gateway.push_bar("AAPL", t0 + 60, 193.0, 193.1, 192.9, 193.05, 50)
    await gateway.push_bar("MSFT", t0 + 60, 1, 1, 1, 1, 1)  # not subscribed: ignored
    await run.close()
    assert run.bars("AAPL") == [bar]


async def test_unknown_symbol_is_reported_and_others_continue(gateway):
    run = FeedRun(make_feed(gateway), ["ZZZZ", "AAPL"], warmup_bars=5)
    notice = await run.wait_status("notice", symbol="ZZZZ")
    assert notice.permanent
    assert "ZZZZ" in notice.message and "symbol" in notice.message
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    assert not gateway.active_subscriptions("ZZZZ")
    await run.close()


async def test_only_unknown_symbols_is_an_error(gateway):
    run = FeedRun(make_feed(gateway), ["ZZZZ", "QQQQQ"], warmup_bars=5)
    error = await run.wait_status("error")
    assert error.permanent
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(run.task, WAIT)
    assert raised.value.permanent and raised.value.message == error.message


@pytest.mark.parametrize("code", [354, 420, 10089])
async def test_realtime_permission_error(gateway, code):
    gateway.deny_realtime("MSFT", code)
    run = FeedRun(make_feed(gateway), ["AAPL", "MSFT"], warmup_bars=5)
    notice = await run.wait_status("notice", symbol="MSFT")
    assert notice.permanent
    assert "MSFT" in notice.message and "market data" in notice.message
    assert "other symbols continue" in notice.message
    await gateway.wait_subscribed("AAPL")
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    await run.close()


async def test_history_permission_error_still_streams(gateway):
    gateway.deny_history(
        "MSFT",
        162,
        "Historical Market Data Service error message:No market data permissions for NYSE STK",
    )
    run = FeedRun(make_feed(gateway), ["AAPL", "MSFT"], warmup_bars=5)
    notice = await run.wait_status("notice", symbol="MSFT")
    assert "history" in notice.message and "permission" in notice.message
    await run.wait_status("running")
    assert run.bars("MSFT", warmup=True) == []
    assert len(run.bars("AAPL", warmup=True)) == 5
    await gateway.wait_subscribed("MSFT")
    await gateway.push_bar("MSFT", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("MSFT", 1)
    await run.close()


async def test_client_id_in_use(gateway):
    gateway.reject_client_id(17)
    run = FeedRun(make_feed(gateway), ["AAPL"])
    error = await run.wait_status("error")
    assert error.permanent
    assert "Client id 17" in error.message and "18" in error.message
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(run.task, WAIT)
    assert raised.value.code == 326 and raised.value.permanent
    assert gateway.connect_count == 0


async def test_gateway_not_running_then_appears(gateway):
    await gateway.stop()
    run = FeedRun(make_feed(gateway, max_backoff=0.2), ["AAPL"], warmup_bars=5)
    where = f"127.0.0.1:{gateway.port}"

    def refused() -> list[StatusEvent]:
        return [e for e in run.statuses("connecting") if "Can't reach" in e.message]

    await run.wait_for(lambda: len(refused()) >= 3)
    message = refused()[0].message
    assert f"Can't reach TWS / IB Gateway at {where}" in message
    assert "API" in message and "Retrying in 0.5 s" in message
    assert not run.finished
    await gateway.start()
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    await run.close()


async def test_gateway_restarts_lose_and_duplicate_no_bar(gateway):
    t0 = gateway.t0
    run = FeedRun(make_feed(gateway), ["AAPL", "MSFT"], warmup_bars=10)
    await run.wait_status("running")
    bars = {
        "AAPL": iter(make_bars(t0, 200, price=195.0)),
        "MSFT": iter(make_bars(t0, 200, price=415.0)),
    }

    async def push_some(n: int) -> None:
        for _ in range(n):
            for symbol, source in bars.items():
                await gateway.push_bar(symbol, *next(source))

    for cycle in range(3):
        await gateway.wait_subscribed("AAPL", total=cycle + 1)
        await gateway.wait_subscribed("MSFT", total=cycle + 1)
        await push_some(4)
        await run.wait_for(lambda: len(run.bars("MSFT")) == len(gateway.pushed["MSFT"]))
        await gateway.stop()
        await push_some(3)  # while TWS is down: only in its history
        await gateway.start()
        await run.wait_status("running", after=len(run.events))
        await push_some(2)
    for symbol in bars:
        await run.wait_for(lambda s=symbol: len(run.bars(s)) >= len(gateway.pushed[s]))
    await asyncio.sleep(0.05)  # let any duplicate surface
    for symbol in bars:
        expected = [
            as_bar(symbol, (b.time, b.open, b.high, b.low, b.close, b.volume))
            for b in gateway.pushed[symbol]
        ]
        assert run.bars(symbol) == expected
    assert len(run.statuses("reconnecting")) >= 3
    await run.close()


async def test_restart_with_one_minute_bars(gateway):
    t0 = gateway.t0
    run = FeedRun(make_feed(gateway), ["AAPL"], bar_seconds=60, warmup_bars=3)
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    rows = make_bars(t0, 36, price=200.0)  # three whole minutes
    await push(gateway, "AAPL", rows[:8])
    await gateway.stop()
    await push(gateway, "AAPL", rows[8:20])
    await gateway.start()
    await gateway.wait_subscribed("AAPL", total=2)
    await push(gateway, "AAPL", rows[20:])
    got = await run.wait_bars("AAPL", 3)
    assert [b.time for b in got] == [t0, t0 + 60, t0 + 120]
    assert [b.volume for b in got] == [sum(r[5] for r in rows[i : i + 12]) for i in (0, 12, 24)]
    await run.close()


async def test_error_1101_resubscribes_and_1102_keeps(gateway):
    run = FeedRun(make_feed(gateway), ["AAPL"], warmup_bars=5)
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    gateway.inject_error(-1, 1100)
    await run.wait_status("reconnecting")
    mark = len(run.events)
    gateway.inject_error(-1, 1101)
    await gateway.wait_cancelled("AAPL")
    await gateway.wait_subscribed("AAPL", total=2)
    await run.wait_status("running", after=mark)
    assert len(gateway.active_subscriptions("AAPL")) == 1
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    mark = len(run.events)
    gateway.inject_error(-1, 1102)
    kept = await run.wait_status("running", after=mark)
    assert "kept" in kept.message
    assert len(gateway.subscribe_log) == 2
    await run.close()


async def test_close_ends_promptly_and_cancels_subscriptions(gateway):
    run = FeedRun(make_feed(gateway), ["AAPL", "MSFT"], warmup_bars=5)
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    await gateway.wait_subscribed("MSFT")
    await run.close()
    await gateway.wait_cancelled("AAPL")
    await gateway.wait_cancelled("MSFT")
    await gateway.wait_until(lambda: not gateway.connections)


async def test_close_while_waiting_to_reconnect(gateway):
    await gateway.stop()
    run = FeedRun(make_feed(gateway, max_backoff=10), ["AAPL"])
    await run.wait_for(lambda: len(run.statuses("connecting")) >= 2)
    await run.close()
    assert run.finished


@pytest.mark.parametrize(
    ("use_rth", "opens"), [(False, "Mon 04:00"), (True, "Mon 09:30")], ids=["all-hours", "rth"]
)
async def test_market_closed_per_its_own_hours(gateway, use_rth, opens):
    """A Saturday at the gateway's US stock hours (04:00-20:00 New York, RTH 09:30-16:00,
    IB's strings with CLOSED weekends): the item's market line, one notice naming it, and
    no renewed subscription however silent it stays."""
    saturday = next_weekday(5, 15)
    feed = make_feed(gateway, clock=clock_at(saturday), use_rth=use_rth, stale_after=0.3)
    run = FeedRun(feed, ["AAPL"], warmup_bars=5)
    await run.wait_for(lambda: bool(run.markets("AAPL")))
    line = f"closed, opens {opens} America/New_York"
    assert [(m.is_open, m.line) for m in run.markets("AAPL")] == [(False, line)]
    notice = next(e.message for e in run.statuses("notice") if "AAPL —" in e.message)
    assert notice == f"AAPL — {line} (IB sends no realtime bars while a market is closed)."
    await gateway.wait_subscribed("AAPL")
    await asyncio.sleep(1.5)  # five times stale_after: a closed market is no stale symbol
    assert len(gateway.subscribe_log) == 1
    assert not any("renewing" in e.message for e in run.statuses("notice"))
    assert gateway.subscribe_log[0].use_rth is use_rth
    await run.close()


async def test_stale_symbol_is_resubscribed_while_its_market_is_open(gateway):
    tuesday = next_weekday(1, 15)  # 10:00 or 11:00 New York: open in the gateway's hours
    feed = make_feed(gateway, clock=clock_at(tuesday), stale_after=0.3)
    run = FeedRun(feed, ["AAPL"], warmup_bars=5)
    await run.wait_status("running")
    await gateway.wait_cancelled("AAPL")
    await gateway.wait_subscribed("AAPL", total=2)
    notice = await run.wait_status("notice", symbol="AAPL")
    assert "renewing the subscription" in notice.message
    assert [(m.is_open, m.line) for m in run.markets("AAPL")] == [(True, "trading (US stocks)")]
    assert not any("closed" in e.message for e in run.statuses("notice"))
    await run.close()


async def test_test_connection(gateway):
    ok, message = await test_connection("127.0.0.1", gateway.port, 99)
    assert ok, message
    assert "DU1234567" in message and "paper" in message
    await gateway.stop()
    ok, message = await test_connection("127.0.0.1", gateway.port, 99, timeout=2)
    assert not ok
    assert "Can't reach TWS / IB Gateway" in message


async def test_describe_ib_error():
    for code in (162, 200, 326, 354, 420, 1100, 1101, 1102, 10089, 10197):
        assert code in IB_ERROR_MESSAGES
    message, permanent = describe_ib_error(
        162, "Historical Market Data Service error message:Historical data request pacing violation"
    )
    assert "pacing violation" in message and not permanent
    message, permanent = describe_ib_error(
        200, "No security definition has been found for the request"
    )
    assert permanent and "symbol" in message
    message, permanent = describe_ib_error(10197, "No market data during competing live session")
    assert not permanent and "competing live session" in message
    other_ip = (
        "Historical Market Data Service error message:Trading TWS session is connected "
        "from a different IP address"
    )
    assert describe_ib_error(162, other_ip) == describe_ib_error(10197, other_ip)
    assert describe_ib_error(354, "Requested market data is not subscribed.")[1]
    assert describe_ib_error(99999, "odd")[0] == "IB error 99999: odd"


async def test_competing_live_session_is_a_passing_notice(gateway):
    run = FeedRun(make_feed(gateway), ["AAPL"], warmup_bars=5)
    await run.wait_status("running")
    sub = await gateway.wait_subscribed("AAPL")
    gateway.inject_error(sub.req_id, 10197, "No market data during competing live session")
    said = await run.wait_for_message("competing live session")
    notice = next(e for e in run.statuses("notice") if e.message == said)
    assert not notice.permanent and notice.symbol is None  # the whole login, not one item
    assert "Log out" in notice.message
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    await run.close()


async def test_history_pacing_violation_is_waited_out_and_the_warm_up_completes(gateway):
    """IB refuses the warm-up's history for pacing (its count includes other programs'
    requests): the feed says so, waits as IB's rules ask (the same request again only after
    15 s) and asks again; the warm-up still loads its bars."""
    gateway.deny_history(
        "AAPL",
        162,
        "Historical Market Data Service error message:Historical data request pacing violation",
    )
    run = FeedRun(make_feed(gateway), ["AAPL"], warmup_bars=5)
    notice = await run.wait_status("notice", symbol="AAPL")
    assert "pacing violation" in notice.message
    assert "waiting 15 s" in notice.message
    refused = len(gateway.history_log)
    gateway.history_denied.clear()  # IB's window moved on
    await run.wait_status("running", timeout=30)
    assert len(run.bars("AAPL", warmup=True)) == 5
    times = [float(r["at"]) for r in gateway.history_log]  # type: ignore[arg-type]
    assert times[refused] - times[refused - 1] >= 15  # the same request, 15 s later
    assert gateway.pacing_violations() == []
    await run.close()


async def test_bar_arriving_live_during_warm_up_stays_live(gateway):
    gateway.history_delay = 0.3
    run = FeedRun(make_feed(gateway), ["AAPL"], warmup_bars=5)
    await gateway.wait_subscribed("AAPL")
    history = list(gateway.symbols["AAPL"].history[5])
    await gateway.push_bar("AAPL", gateway.t0, 1, 2, 0.5, 1.5, 10)  # before history answers
    await run.wait_status("running")
    assert await run.wait_bars("AAPL", 1) == [Bar("AAPL", gateway.t0, 5, 1, 2, 0.5, 1.5, 10)]
    warm = run.bars("AAPL", warmup=True)
    assert [b.time for b in warm] == [b.time for b in history[-5:]]
    await run.close()
