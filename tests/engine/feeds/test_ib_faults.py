"""A trading day's IB faults, at the feed: the real client library (ib_async or ib_insync)
against the fake TWS scripting each fault. Every scenario pushes a run of 5-second bars
across the fault and checks the feed yields each exactly once, in order — no gap, no
duplicate, so the engine's signals are replay's — plus what it tells the user. The same
scenarios with the worker process and stored signals: tests/engine/test_ib_faults.py.

Runs without Django (the ib_insync stage of the test command runs it too).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from engine.core.bars import Bar
from engine.feeds.ib import IBFeed
from tests.engine.feeds.support import FeedRun, make_bars, minute_floor
from tests.faketws import FakeTWS

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]

STALE = 1.5  # the feed's staleness window in these tests (15 s in real use)


@pytest_asyncio.fixture
async def gw():
    """A fake TWS with AAPL and MSFT trading around the clock (no test depends on the time
    of day), history up to ``gw.t0`` (10 minutes ago); live bars follow from there."""
    t0 = minute_floor(time.time()) - 600
    gw = FakeTWS()
    for symbol, price in (("AAPL", 190.0), ("MSFT", 410.0)):
        gw.add_symbol(symbol, hours="always", history={5: make_bars(t0 - 200, 40, price=price)})
    gw.t0 = t0  # type: ignore[attr-defined]
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def make_feed(gw: FakeTWS, **options) -> IBFeed:
    options.setdefault("connect_timeout", 3)
    options.setdefault("max_backoff", 0.5)
    options.setdefault("stale_after", STALE)
    return IBFeed(host="127.0.0.1", port=gw.port, client_id=17, **options)


class Tape:
    """The live 5-second bars of one symbol, pushed one after another from ``gw.t0``."""

    def __init__(self, gw: FakeTWS, symbol: str, price: float) -> None:
        self.gw, self.symbol = gw, symbol
        self.rows = make_bars(gw.t0, 100, price=price)  # type: ignore[attr-defined]
        self.sent = 0

    async def push(self, count: int, *, delivered: bool | None = True) -> None:
        for row in self.rows[self.sent : self.sent + count]:
            got = await self.gw.push_bar(self.symbol, *row)
            if delivered is not None:
                assert (got > 0) == delivered, f"{self.symbol} {row[0]}: delivered {got}"
        self.sent += count

    def bars(self) -> list[Bar]:
        return [
            Bar(self.symbol, t, 5, o, h, lo, c, v) for t, o, h, lo, c, v in self.rows[: self.sent]
        ]


async def started(gw: FakeTWS, symbols=("AAPL",), **options) -> FeedRun:
    run = FeedRun(make_feed(gw, **options), list(symbols), warmup_bars=10)
    await run.wait_status("running")
    return run


async def all_in(run: FeedRun, *tapes: Tape) -> None:
    """Every pushed bar came out once, in order (no gap, no duplicate)."""
    for tape in tapes:
        await run.wait_for(lambda t=tape: len(run.bars(t.symbol)) >= t.sent)
        assert run.bars(tape.symbol) == tape.bars()


def subscribes(gw: FakeTWS, symbol: str) -> int:
    return sum(s.symbol == symbol for s in gw.subscribe_log)


def messages(run: FeedRun) -> list[str]:
    return [e.message for e in run.statuses()]


async def test_1100_then_1102_pauses_without_a_resubscribe_storm_and_fills_the_gap(gw):
    aapl, msft = Tape(gw, "AAPL", 190.0), Tape(gw, "MSFT", 410.0)
    run = await started(gw, ("AAPL", "MSFT"))
    await aapl.push(4)
    await msft.push(4)
    await all_in(run, aapl, msft)
    before = subscribes(gw, "AAPL") + subscribes(gw, "MSFT")

    gw.connectivity_lost()
    await run.wait_status("reconnecting")
    await aapl.push(5, delivered=False)  # IB's servers are away: nothing arrives
    await msft.push(5, delivered=False)
    await run.wait_for(lambda: "stale" in run.streams("AAPL"))
    await asyncio.sleep(3 * STALE)  # silent well past the window: still no renewal
    assert subscribes(gw, "AAPL") + subscribes(gw, "MSFT") == before

    gw.connectivity_restored(data_kept=True)
    restored = await run.wait_for_message("market data was kept")
    assert restored == (
        "TWS / IB Gateway is connected to IB's servers again (market data was kept): "
        "10 bars backfilled."
    )
    await aapl.push(3)
    await msft.push(3)
    await all_in(run, aapl, msft)
    assert subscribes(gw, "AAPL") + subscribes(gw, "MSFT") == before  # the same subscriptions
    await run.wait_for(lambda: run.streams("AAPL")[-1] == "streaming")
    await run.close()


async def test_1100_then_1101_resubscribes_and_backfills(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(3)
    gw.connectivity_lost()
    await run.wait_status("reconnecting")
    await aapl.push(4, delivered=False)
    gw.connectivity_restored(data_kept=False)  # the old subscription is dead for good
    await gw.wait_subscribed("AAPL", total=2)
    restored = await run.wait_for_message("market data was lost")
    assert restored.endswith("market data was lost): data resubscribed, 4 bars backfilled.")
    await aapl.push(3)
    await all_in(run, aapl)
    await run.close()


async def test_a_farm_blip_renews_the_subscription_it_left_silent_and_fills_the_stretch(gw):
    aapl, msft = Tape(gw, "AAPL", 190.0), Tape(gw, "MSFT", 410.0)
    run = await started(gw, ("AAPL", "MSFT"))
    await aapl.push(2)
    await msft.push(2)
    gw.farm_broken()
    await aapl.push(2, delivered=False)
    await msft.push(2, delivered=False)
    gw.farm_ok(mute=["AAPL"])  # AAPL's subscription never delivers again, without a word
    said = await run.wait_for_message("farm connection is OK again")
    assert said.endswith("renewed the subscription of AAPL, MSFT.")
    await gw.wait_subscribed("AAPL", total=2)
    await aapl.push(3)
    await msft.push(3)
    await all_in(run, aapl, msft)
    assert any("2 bars missing from the realtime stream filled" in m for m in messages(run))
    await run.close()


async def test_a_subscription_gone_silent_is_renewed_by_the_watchdog_and_backfilled(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(2)
    gw.mute("AAPL")  # no error, no farm message: it just stops
    await aapl.push(3, delivered=False)
    await gw.wait_subscribed("AAPL", total=2, timeout=4 * STALE + 3)
    await run.wait_for(lambda: "stale" in run.streams("AAPL"))
    await aapl.push(2)
    await all_in(run, aapl)
    await run.wait_for(lambda: run.streams("AAPL")[-1] == "streaming")
    assert any("renewing the subscription" in m for m in messages(run))
    await run.close()


async def test_a_closed_market_is_left_alone(gw):
    closed = datetime.fromtimestamp(time.time(), UTC).strftime("%Y%m%d")
    gw.add_symbol(
        "SAP", exchange="IBIS", currency="EUR", hours="xetra",
        trading_hours=f"{closed}:CLOSED", liquid_hours=f"{closed}:CLOSED",
        history={5: make_bars(gw.t0 - 200, 40, price=120.0)},  # type: ignore[attr-defined]
    )  # fmt: skip
    run = await started(gw, ("SAP:STK:IBIS:EUR",))
    await run.wait_for(lambda: "closed" in run.streams("SAP:STK:IBIS:EUR"))
    await asyncio.sleep(3 * STALE)
    assert subscribes(gw, "SAP") == 1  # IB sends nothing while closed: no renewal
    await run.close()


async def test_the_daily_restart_is_named_and_the_gap_filled(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    now = datetime.now(UTC)
    run = await started(gw, restart_time=f"{now:%H:%M}", restart_zone="UTC")
    await aapl.push(3)
    await all_in(run, aapl)
    await gw.daily_restart(2.0)
    waiting = await run.wait_for_message("daily restart")
    assert waiting.startswith(f"TWS / IB Gateway daily restart ({now:%H:%M} UTC); back at about")
    assert waiting.endswith("Waiting, then reconnecting and filling the gap from history.")
    await aapl.push(4, delivered=None)  # while it restarts: into its history
    back = await run.wait_for_message("Reconnected;", timeout=10)
    assert back.startswith("Reconnected; data resubscribed, 4 bars backfilled.")
    await aapl.push(2)
    await all_in(run, aapl)
    await run.close()


async def test_a_pacing_refusal_of_a_backfill_is_waited_out(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(2)
    gw.connectivity_lost()
    await aapl.push(3, delivered=False)
    gw.refuse_history(1)  # the backfill's first request: a pacing violation
    gw.connectivity_restored(data_kept=True)
    waiting = await run.wait_for_message("pacing violation")
    assert waiting == (
        "AAPL: IB refused a history request (pacing violation); waiting 15 s as IB's rules "
        "ask, then asking again."
    )
    await run.wait_for_message("market data was kept", timeout=25)
    await aapl.push(2)
    await all_in(run, aapl)
    await run.close()


async def test_a_competing_session_and_its_end(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(2)
    gw.competing_session(True)
    said = await run.wait_for_message("competing live session")
    assert said.startswith("IB sends no market data during a competing live session")
    await run.wait_for(lambda: "refused" in run.streams("AAPL"))
    await aapl.push(3, delivered=False)
    await asyncio.sleep(3 * STALE)
    assert subscribes(gw, "AAPL") == 1  # no resubscribe storm while the other session runs
    gw.competing_session(False)
    await aapl.push(2)
    await all_in(run, aapl)
    assert "Bars from IB again: the competing live session ended." in messages(run)
    await run.wait_for(lambda: run.streams("AAPL")[-1] == "streaming")
    await run.close()


@pytest.mark.parametrize("allowed", [False, True])
async def test_a_client_id_taken_on_reconnect(gw, allowed):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw, next_client_id=allowed)
    await aapl.push(2)
    gw.take_client_id(17)  # another program connects as 17 while we are away
    await gw.drop_connections()
    if allowed:
        said = await run.wait_for_message("trying client id 18")
        assert said == (
            "Client id 17 is in use by another program; trying client id 18 (Settings allow "
            "the next free id)."
        )
        back = await run.wait_for_message("Reconnected;")
        assert back.endswith(f"127.0.0.1:{gw.port} as client id 18.")
    else:
        said = await run.wait_for_message("in use by another program")
        assert said.startswith("Client id 17 is in use by another program connected to TWS")
        assert "allow the next free client id in Settings" in said
        assert not run.feed._closed.is_set()  # still trying, not given up
        gw.release_client_id(17)
        back = await run.wait_for_message("Reconnected;", timeout=15)
        assert back.endswith(f"127.0.0.1:{gw.port}.")  # its own id again
    await aapl.push(2)
    await all_in(run, aapl)
    await run.close()


async def test_a_trade_bust_resubscribes_and_nothing_is_lost(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(2)
    gw.trade_bust("AAPL")
    said = await run.wait_for_message("trade bust")
    assert said.startswith("AAPL: IB cancelled the realtime bars after a trade bust")
    await gw.wait_subscribed("AAPL", total=2)
    await aapl.push(3)
    await all_in(run, aapl)
    await run.close()


async def test_bars_twice_out_of_order_or_out_of_time_are_ignored_and_counted(gw):
    aapl = Tape(gw, "AAPL", 190.0)
    run = await started(gw)
    await aapl.push(4)
    await all_in(run, aapl)
    rows = aapl.rows
    await gw.push_bar("AAPL", *rows[3])  # the last one again
    await gw.push_bar("AAPL", *rows[2])  # an older one, again
    await gw.push_bar("AAPL", rows[3][0] - 2, *rows[3][1:])  # out of order, never seen
    t_future = int(time.time()) + 3600
    await gw.push_bar("AAPL", t_future, 1, 1, 1, 1, 1)
    await aapl.push(2)
    await all_in(run, aapl)  # none of them came out
    said = await run.wait_for_message("ignored")
    assert said.startswith("AAPL: ignored ")
    await asyncio.sleep(5.5)  # the count is told at most every 5 s
    await aapl.push(1)
    await all_in(run, aapl)
    counted = [m for m in messages(run) if "AAPL: ignored" in m][-1]
    assert counted == (
        "AAPL: ignored 4 bars from IB so far (2 that arrived twice, 1 out of order, 1 "
        "starting more than 60 s in the future); no bar is taken twice."
    )
    await run.close()
