"""The IB feed with every instrument type (DESIGN §7.1) against the fake TWS, through the real
IB client library (ib_async or ib_insync): futures' front month and roll window, FX pairs on
MIDPOINT with no volume, non-US stocks, index values, crypto, ambiguous and unknown items,
and each item's market line from its own trading hours at a fixed test clock.

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from engine.core.bars import Bar
from engine.core.instruments import ContractInfo
from engine.feeds.base import FeedError
from engine.feeds.ib import IBFeed
from tests.engine.feeds.support import WAIT, FeedRun, make_bars
from tests.faketws import FakeTWS

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]

# Monday 7 December 2026, 06:30 UTC: 00:30 in Chicago (CME Globex trades since Sunday 17:00),
# 01:30 in New York (FX trades; US stocks open at 04:00), 07:30 in Berlin (Xetra opens 08:00).
MONDAY = datetime(2026, 12, 7, 6, 30, tzinfo=UTC)
WATCHLIST = ["ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE", "AAPL"]
# item -> the gateway's name of the contract it must stream
STREAMS = {
    "ES:FUT:CME": "ESZ6",
    "EURUSD:CASH": "EUR.USD",
    "SAP:STK:IBIS:EUR": "SAP",
    "SPX:IND:CBOE": "SPX",
    "AAPL": "AAPL",
}
PRICES = {"ESZ6": 6000.0, "ESH7": 6050.0, "EUR.USD": 1.08, "SAP": 180.0, "SPX": 5990.0,
          "AAPL": 190.0, "BTC": 90000.0, "SAP.USD": 200.0}  # fmt: skip


class Clock:
    """A test clock at real speed from a fixed instant; ``jump`` moves it."""

    def __init__(self, at: datetime) -> None:
        self.offset = 0.0
        self.jump(at)

    def jump(self, at: datetime) -> None:
        self.offset = at.timestamp() - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    @property
    def t0(self) -> int:
        """The last whole minute."""
        now = int(self())
        return now - now % 60


def fx_bars(start: int, count: int, price: float) -> list[tuple]:
    """Quotes moving by the pair's tick (0.00005): closes exact at five decimals."""
    out = []
    for i in range(count):
        o = round(price + i * 0.00005, 5)
        c = round(o + 0.00005, 5)
        out.append((start + i * 5, o, round(c + 0.0001, 5), round(o - 0.0001, 5), c, 0))
    return out


def history(clock: Clock, name: str) -> list[tuple]:
    """Ten minutes of 5-second bars up to the clock's last whole minute."""
    start = clock.t0 - 600
    if name == "EUR.USD":
        return fx_bars(start, 120, PRICES[name])
    return make_bars(start, 120, price=PRICES[name], step=0.25 if "ES" in name else 0.01)


def add_instruments(gw: FakeTWS, clock: Clock, *, ambiguous: bool = False) -> None:
    """The contracts of the issue's watchlist as IB describes them, and BTC on PAXOS."""

    def add(name: str, **details) -> None:
        gw.add_symbol(name, history={5: history(clock, name)}, **details)

    for local, last, con_id in (("ESZ6", "20261218", 730283085), ("ESH7", "20270319", 649180695)):
        add(local, con_id=con_id, sec_type="FUT", ib_symbol="ES", exchange="CME",
            last_trade_date=last, multiplier="50", min_tick=0.25, hours="cme",
            long_name="E-mini S&P 500")  # fmt: skip
    add("EUR.USD", con_id=12087792, sec_type="CASH", ib_symbol="EUR", exchange="IDEALPRO",
        min_tick=0.00005, hours="fx", has_volume=False,
        long_name="European Monetary Union Euro")  # fmt: skip
    add("SAP", con_id=14204, exchange="IBIS", primary_exchange="IBIS", currency="EUR",
        trading_class="XETRA", min_tick=0.01, hours="xetra", long_name="SAP SE")  # fmt: skip
    if ambiguous:
        add("SAP.USD", con_id=14205, ib_symbol="SAP", exchange="IBIS", primary_exchange="IBIS",
            currency="USD", local_symbol="SAP", trading_class="XETRA", hours="xetra")  # fmt: skip
    add("SPX", con_id=416904, sec_type="IND", exchange="CBOE", min_tick=0.01,
        hours="cboe_index", has_volume=False, long_name="S&P 500 Stock Index")  # fmt: skip
    add("AAPL", con_id=265598, primary_exchange="NASDAQ", long_name="APPLE INC")
    add("BTC", con_id=479624278, sec_type="CRYPTO", exchange="PAXOS", local_symbol="BTC.USD",
        min_tick=0.25, hours="crypto", long_name="Bitcoin")  # fmt: skip


@pytest_asyncio.fixture
async def clock():
    return Clock(MONDAY)


@pytest_asyncio.fixture
async def gateways():
    """``await gateways(clock)``: a started fake TWS on the test clock, knowing the
    instruments with 5-second history up to the clock's time."""
    started: list[FakeTWS] = []

    async def make(clock: Clock, *, ambiguous: bool = False) -> FakeTWS:
        gateway = FakeTWS(now=clock)
        add_instruments(gateway, clock, ambiguous=ambiguous)
        started.append(gateway)
        return await gateway.start()

    try:
        yield make
    finally:
        for gateway in started:
            await gateway.stop()


@pytest_asyncio.fixture
async def gw(clock, gateways):
    return await gateways(clock)


def make_feed(gw: FakeTWS, clock: Clock, **options) -> IBFeed:
    options.setdefault("connect_timeout", 3)
    options.setdefault("max_backoff", 0.5)
    return IBFeed(host="127.0.0.1", port=gw.port, client_id=17, clock=clock, **options)


def requests_for(gw: FakeTWS, name: str) -> list[dict]:
    return [r for r in gw.history_log if r["symbol"] == name]


async def test_the_issue_watchlist_streams_every_instrument_on_its_own_hours(gw, clock):
    run = FeedRun(make_feed(gw, clock), WATCHLIST, warmup_bars=10)
    await run.wait_status("running")
    await run.wait_for(lambda: len(run.markets()) == 5)

    assert {s: e.contract for s, e in run.instruments().items()} == {
        "ES:FUT:CME": ContractInfo("ESZ6", "FUT", "CME", "USD", "0.25"),
        "EURUSD:CASH": ContractInfo("EUR.USD", "CASH", "IDEALPRO", "USD", "0.00005"),
        "SAP:STK:IBIS:EUR": ContractInfo("SAP", "STK", "IBIS", "EUR", "0.01"),
        "SPX:IND:CBOE": ContractInfo("SPX", "IND", "CBOE", "USD", "0.01"),
        "AAPL": ContractInfo("AAPL", "STK", "SMART", "USD", "0.01"),
    }
    assert run.instruments()["EURUSD:CASH"].contract.to_json()["min_tick"] == 0.00005

    # Warm-up: each from its own contract's history, of the data type IB has for it.
    shown = {"ESZ6": "TRADES", "EUR.USD": "MIDPOINT", "SAP": "TRADES", "SPX": "TRADES",
             "AAPL": "TRADES"}  # fmt: skip
    for item, name in STREAMS.items():
        requests = requests_for(gw, name)
        assert requests and {r["what_to_show"] for r in requests} == {shown[name]}, item
        warm = run.bars(item, warmup=True)
        expected = gw.symbols[name].history[5][-10:]
        assert [(b.time, b.close) for b in warm] == [(b.time, b.close) for b in expected], item
    assert not requests_for(gw, "ESH7"), "the front month only"
    assert {b.volume for b in run.bars("EURUSD:CASH", warmup=True)} == {0.0}
    assert {b.volume for b in run.bars("SPX:IND:CBOE", warmup=True)} == {0.0}
    assert all(b.volume > 0 for b in run.bars("ES:FUT:CME", warmup=True))

    # Live: 5-second bars of each contract, named by the item.
    subscribed = {s.symbol: s.what_to_show for s in gw.subscribe_log}
    assert subscribed == {"ESZ6": "TRADES", "EUR.USD": "MIDPOINT", "SAP": "TRADES",
                          "SPX": "TRADES", "AAPL": "TRADES"}  # fmt: skip
    t0 = clock.t0
    live = {
        "ESZ6": [(t0, 6000.0, 6000.5, 5999.75, 6000.25, 7)],
        "EUR.USD": [(t0, 1.08, 1.0803, 1.07995, 1.08025, 0),
                    (t0 + 5, 1.08025, 1.0803, 1.0801, 1.08015, 0)],
        "SAP": [(t0, 180.0, 180.1, 179.9, 180.05, 300)],
        "SPX": [(t0, 5990.0, 5990.5, 5989.75, 5990.25, 0)],
        "AAPL": [(t0, 190.0, 190.1, 189.9, 190.05, 7)],
    }  # fmt: skip
    for name, rows in live.items():
        await gw.wait_subscribed(name)
        for row in rows:
            await gw.push_bar(name, *row)
    for item, name in STREAMS.items():
        got = await run.wait_bars(item, len(live[name]))
        assert [(b.symbol, b.time, b.close) for b in got] == [
            (item, row[0], row[4]) for row in live[name]
        ]
    assert run.bars("ES:FUT:CME") == [Bar("ES:FUT:CME", t0, 5, 6000.0, 6000.5, 5999.75, 6000.25, 7)]
    # MIDPOINT bars and index values come with volume -1 on the wire: 0 in the bars.
    assert [b.volume for b in run.bars("EURUSD:CASH")] == [0.0, 0.0]
    assert run.bars("SPX:IND:CBOE")[0].volume == 0.0
    assert run.bars("SAP:STK:IBIS:EUR")[0].volume == 300

    # Hours: each item's own, at the test clock.
    assert {m.symbol: (m.is_open, m.line) for m in run.markets()} == {
        "ES:FUT:CME": (True, "trading (CME Globex)"),
        "EURUSD:CASH": (True, "trading (IDEALPRO FX)"),
        "SAP:STK:IBIS:EUR": (False, "closed, opens 08:00 Europe/Berlin"),
        "SPX:IND:CBOE": (False, "closed, opens 08:30 America/Chicago"),
        "AAPL": (False, "closed, opens 04:00 America/New_York"),
    }
    notice = next(e.message for e in run.statuses("notice") if " — closed" in e.message)
    assert notice == (
        "SAP:STK:IBIS:EUR — closed, opens 08:00 Europe/Berlin; SPX:IND:CBOE — closed, opens "
        "08:30 America/Chicago; AAPL — closed, opens 04:00 America/New_York (IB sends no "
        "realtime bars while a market is closed)."
    )

    # Xetra opens: one market event and a notice naming the item, nothing for the others.
    mark = len(run.events)
    clock.jump(datetime(2026, 12, 7, 7, 0, 5, tzinfo=UTC))  # 08:00:05 Berlin
    await run.wait_for(lambda: len(run.markets()) == 6)
    assert run.markets()[-1].symbol == "SAP:STK:IBIS:EUR"
    assert (run.markets()[-1].is_open, run.markets()[-1].line) == (True, "trading (Xetra)")
    opened = await run.wait_status("notice", after=mark)
    assert opened.message == "SAP:STK:IBIS:EUR — trading (Xetra)."
    await run.close()


async def test_regular_trading_hours_use_the_liquid_hours(gateways):
    clock = Clock(datetime(2026, 12, 7, 14, 0, tzinfo=UTC))  # 08:00 Chicago, 15:00 Berlin
    gw = await gateways(clock)
    run = FeedRun(make_feed(gw, clock, use_rth=True), ["ES:FUT:CME", "SAP:STK:IBIS:EUR"])
    await run.wait_for(lambda: len(run.markets()) == 2)
    assert {m.symbol: (m.is_open, m.line) for m in run.markets()} == {
        "ES:FUT:CME": (False, "closed, opens 08:30 America/Chicago"),
        "SAP:STK:IBIS:EUR": (True, "trading (Xetra)"),
    }
    assert {s.symbol: s.use_rth for s in gw.subscribe_log} == {"ESZ6": True, "SAP": True}
    await run.close()


@pytest.mark.parametrize(
    ("at", "month"),
    [
        (datetime(2026, 12, 7, 15, tzinfo=UTC), "ESZ6"),  # 11 days before the 18th
        (datetime(2026, 12, 13, 5, tzinfo=UTC), "ESZ6"),  # the 12th in Chicago: 6 days
        (datetime(2026, 12, 13, 7, tzinfo=UTC), "ESH7"),  # the 13th in Chicago: 5 days
        (datetime(2026, 12, 16, 15, tzinfo=UTC), "ESH7"),
    ],
)
async def test_the_front_month_rolls_five_days_before_the_last_trade_date(gateways, at, month):
    clock = Clock(at)
    gw = await gateways(clock)
    run = FeedRun(make_feed(gw, clock), ["ES:FUT:CME"], warmup_bars=3)
    await run.wait_status("running")
    assert run.instruments()["ES:FUT:CME"].contract.local_symbol == month
    assert {r["symbol"] for r in gw.history_log} == {month}
    sub = await gw.wait_subscribed(month)
    await gw.push_bar(month, clock.t0, 6010, 6011, 6009, 6010.25, 3)
    (bar,) = await run.wait_bars("ES:FUT:CME", 1)
    assert (bar.symbol, bar.close) == ("ES:FUT:CME", 6010.25) and sub.what_to_show == "TRADES"
    await run.close()


async def test_a_longer_roll_window_skips_a_month(gw, clock):
    run = FeedRun(make_feed(gw, clock, roll_days=15), ["ES:FUT:CME"], warmup_bars=3)
    await run.wait_status("running")
    assert run.instruments()["ES:FUT:CME"].contract.local_symbol == "ESH7"
    await run.close()


async def test_a_future_with_no_front_month_is_named_and_the_others_continue(gateways):
    clock = Clock(datetime(2026, 12, 14, 15, tzinfo=UTC))
    gw = await gateways(clock)
    del gw.symbols["ESH7"]  # IB lists only December, which trades out in 4 days
    run = FeedRun(make_feed(gw, clock), ["ES:FUT:CME", "AAPL"], warmup_bars=3)
    notice = await run.wait_status("notice", symbol="ES:FUT:CME")
    assert notice.permanent
    assert notice.message == (
        "ES:FUT:CME: no front month: IB lists no ES future on CME whose last trade date is "
        "more than 5 days after today (2026-12-14) (the latest IB lists, ESZ6, trades until "
        "2026-12-18); shorten the roll window or pick another contract. The other symbols "
        "continue."
    )
    await run.wait_status("running")
    await gw.wait_subscribed("AAPL")
    await gw.push_bar("AAPL", clock.t0, 1, 2, 0.5, 1.5, 10)
    await run.wait_bars("AAPL", 1)
    assert "ES:FUT:CME" not in run.instruments()
    assert [s.symbol for s in gw.subscribe_log] == ["AAPL"]
    await run.close()


async def test_an_ambiguous_item_lists_the_candidates(gateways, clock):
    gw = await gateways(clock, ambiguous=True)
    run = FeedRun(make_feed(gw, clock), ["SAP:STK:IBIS", "SAP:STK:IBIS:USD"], warmup_bars=3)
    notice = await run.wait_status("notice", symbol="SAP:STK:IBIS")
    assert notice.permanent
    assert notice.message == (
        "SAP:STK:IBIS: IB found 2 contracts: SAP (IBIS, EUR), SAP (IBIS, USD); add the "
        "currency, e.g. SAP:STK:IBIS:EUR. The other symbols continue."
    )
    await run.wait_status("running")
    assert run.instruments()["SAP:STK:IBIS:USD"].contract.currency == "USD"
    sub = await gw.wait_subscribed("SAP.USD")
    assert sub.con_id == 14205
    await run.close()


async def test_an_unknown_item_is_named_and_the_others_continue(gw, clock):
    items = ["XX:FUT:CME", "ES:FUT:EUREX", "GBPJPY:CASH", "EURUSD:CASH"]
    run = FeedRun(make_feed(gw, clock), items, warmup_bars=3)
    await run.wait_status("running")
    notices = {e.symbol: e for e in run.statuses("notice") if e.permanent}
    assert notices["XX:FUT:CME"].message == (
        "XX:FUT:CME: IB doesn't know XX as a future on CME. Check the symbol, the type and "
        "the exchange. The other symbols continue."
    )
    assert notices["ES:FUT:EUREX"].message.startswith(
        "ES:FUT:EUREX: IB doesn't know ES as a future on EUREX."
    )
    assert notices["GBPJPY:CASH"].message == (
        "GBPJPY:CASH: IB doesn't know the FX pair GBP.JPY on IDEALPRO. Check the currencies. "
        "The other symbols continue."
    )
    await gw.wait_subscribed("EUR.USD")
    await gw.push_bar("EUR.USD", clock.t0, 1.08, 1.0801, 1.0799, 1.08005, 0)
    assert (await run.wait_bars("EURUSD:CASH", 1))[0].close == 1.08005
    await run.close()


async def test_only_unknown_items_is_an_error(gw, clock):
    run = FeedRun(make_feed(gw, clock), ["XX:FUT:CME", "ZZZZ:STK:IBIS:EUR"], warmup_bars=3)
    error = await run.wait_status("error")
    assert error.permanent and "None of the watchlist symbols" in error.message
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(run.task, WAIT)
    assert raised.value.permanent
    assert {e.symbol for e in run.statuses("notice") if e.permanent} == {
        "XX:FUT:CME", "ZZZZ:STK:IBIS:EUR"
    }  # fmt: skip


@pytest.mark.parametrize("code", [354, 10089])
async def test_missing_permissions_for_one_item(gw, clock, code):
    gw.deny_realtime("EUR.USD", code)
    run = FeedRun(make_feed(gw, clock), ["EURUSD:CASH", "ES:FUT:CME"], warmup_bars=3)
    notice = await run.wait_status("notice", symbol="EURUSD:CASH")
    assert notice.permanent
    assert notice.message.startswith("EURUSD:CASH: ")
    assert f"IB error {code}" in notice.message and "other symbols continue" in notice.message
    await gw.wait_subscribed("ESZ6")
    await gw.push_bar("ESZ6", clock.t0, 6000, 6001, 5999, 6000.5, 12)
    await run.wait_bars("ES:FUT:CME", 1)
    assert not gw.active_subscriptions("EUR.USD")
    await run.close()


async def test_history_permission_missing_for_one_item_still_streams_it(gw, clock):
    gw.deny_history(
        "SPX", 162, "Historical Market Data Service error message:No market data permissions "
        "for CBOE IND"
    )  # fmt: skip
    run = FeedRun(make_feed(gw, clock), ["SPX:IND:CBOE", "AAPL"], warmup_bars=3)
    notice = await run.wait_status("notice", symbol="SPX:IND:CBOE")
    assert notice.message.startswith("SPX:IND:CBOE: no warm-up history")
    assert "permission" in notice.message
    await run.wait_status("running")
    assert run.bars("SPX:IND:CBOE", warmup=True) == []
    assert len(run.bars("AAPL", warmup=True)) == 3
    await run.close()


async def test_crypto_history_is_aggregated_trades_and_live_bars_are_trades(gw, clock):
    run = FeedRun(make_feed(gw, clock), ["BTC:CRYPTO"], warmup_bars=5)
    await run.wait_status("running")
    assert {r["what_to_show"] for r in requests_for(gw, "BTC")} == {"AGGTRADES"}
    sub = await gw.wait_subscribed("BTC")
    assert sub.what_to_show == "TRADES"
    assert run.instruments()["BTC:CRYPTO"].contract == ContractInfo(
        "BTC.USD", "CRYPTO", "PAXOS", "USD", "0.25"
    )
    await gw.push_bar("BTC", clock.t0, 90000, 90010.25, 89990, 90005.5, 0.125)
    (bar,) = await run.wait_bars("BTC:CRYPTO", 1)
    assert (bar.close, bar.volume) == (90005.5, 0.125)
    assert run.markets("BTC:CRYPTO")[0].line == "trading (PAXOS)"
    await run.close()


async def test_unreadable_hours_fall_back_to_the_exchange_calendar(gw, clock):
    gw.symbols["SAP"].trading_hours = "not a schedule"
    gw.symbols["ESZ6"].trading_hours = ""
    gw.symbols["ESZ6"].liquid_hours = ""
    run = FeedRun(make_feed(gw, clock), ["SAP:STK:IBIS:EUR", "ES:FUT:CME"], warmup_bars=3)
    await run.wait_for(lambda: len(run.markets()) == 2, timeout=15)
    lines = {m.symbol: (m.is_open, m.line) for m in run.markets()}
    # Xetra's calendar: 09:00-17:30 Berlin; CME Globex's: open Monday 00:30 Chicago.
    assert lines["SAP:STK:IBIS:EUR"] == (False, "closed, opens 09:00 Europe/Berlin")
    assert lines["ES:FUT:CME"] == (True, "trading (CME Globex)")
    await run.close()


async def test_hours_are_read_again_on_each_new_exchange_day(gw, clock):
    run = FeedRun(make_feed(gw, clock), ["ES:FUT:CME", "SAP:STK:IBIS:EUR"], warmup_bars=3)
    await run.wait_for(lambda: len(run.markets()) == 2)
    lookups = len(gw.details_log)
    assert lookups == 2
    # Tuesday 05:30 UTC: 06:30 in Berlin (a new day there), still Monday night in Chicago.
    clock.jump(datetime(2026, 12, 8, 5, 30, tzinfo=UTC))
    await gw.wait_until(lambda: len(gw.details_log) == lookups + 1)
    assert gw.details_log[-1]["symbol"] == "SAP"
    await asyncio.sleep(1.5)  # two market checks
    assert len(gw.details_log) == lookups + 1, "once per day"
    assert [(m.symbol, m.line) for m in run.markets()][-1] == (
        "SAP:STK:IBIS:EUR", "closed, opens 08:00 Europe/Berlin"
    )  # fmt: skip
    # A new day in Chicago too (Tuesday 07:00 UTC is 01:00 there): ES's details again; at
    # 08:00 in Berlin Xetra opens by the hours read that day.
    clock.jump(datetime(2026, 12, 8, 7, 0, 5, tzinfo=UTC))
    await gw.wait_until(lambda: len(gw.details_log) == lookups + 2)
    assert gw.details_log[-1]["symbol"] == "ES"
    await run.wait_for(lambda: run.markets()[-1].is_open)
    assert (run.markets()[-1].symbol, run.markets()[-1].line) == (
        "SAP:STK:IBIS:EUR", "trading (Xetra)"
    )  # fmt: skip
    assert run.instruments()["ES:FUT:CME"].contract.local_symbol == "ESZ6"
    await run.close()


async def test_a_run_reaching_the_roll_window_says_so_once(gw, clock):
    clock.jump(datetime(2026, 12, 12, 15, tzinfo=UTC))  # 6 days before the 18th in Chicago
    run = FeedRun(make_feed(gw, clock), ["ES:FUT:CME"], warmup_bars=0)
    await run.wait_for(lambda: len(run.markets()) == 1)
    assert run.instruments()["ES:FUT:CME"].contract.local_symbol == "ESZ6"
    clock.jump(datetime(2026, 12, 13, 15, tzinfo=UTC))  # 5 days: within the window
    notice = await run.wait_status("notice", symbol="ES:FUT:CME")
    assert notice.message == (
        "ES:FUT:CME: ESZ6 expires within the 5-day roll window; the front month is now ESH7. "
        "This run keeps streaming ESZ6: stop and start the engine to switch."
    )
    clock.jump(datetime(2026, 12, 14, 15, tzinfo=UTC))
    await gw.wait_until(lambda: len(gw.details_log) == 3)
    await asyncio.sleep(1.5)
    assert [e.symbol for e in run.statuses("notice")].count("ES:FUT:CME") == 1
    assert [s.symbol for s in gw.subscribe_log] == ["ESZ6"]
    await run.close()


async def test_an_unreadable_item_is_named_and_the_others_continue(gw, clock):
    run = FeedRun(make_feed(gw, clock), ["ES:FUT", "AAPL"], warmup_bars=3)
    notice = await run.wait_status("notice", symbol="ES:FUT")
    assert notice.permanent
    assert notice.message == (
        "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME. The other symbols continue."
    )
    await run.wait_status("running")
    assert list(run.instruments()) == ["AAPL"]
    assert [d["symbol"] for d in gw.details_log] == ["AAPL"]
    await run.close()
