"""`runengine --feed ib` with every instrument type (DESIGN §7.1, issue 10): the real worker
process against the fake TWS running as a separate process, on the issue's watchlist
``ES:FUT:CME, EURUSD:CASH, SAP:STK:IBIS:EUR, SPX:IND:CBOE, AAPL``. Each item is qualified
(the future's front month by the roll window), warmed up from history of its data type
(MIDPOINT for the FX pair), streams live bars and fires signals stored under its item text;
each item's market line comes from the trading hours its contract details carry.

The worker runs on the real clock: the contract months and the hours strings are built
around it, so the expected month and lines are fixed for the test's clock."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from signals.models import Signal
from tests.engine.helpers import Gateway, engine_state, start_worker, stop_worker, wait_until
from tests.engine.test_runengine_ib import state_log  # noqa: F401 - a fixture
from tests.factories import make_rule, make_watchlist

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30.0
EVERY_BAR = {
    "logic": "AND", "cooldown_sec": 0,
    "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
}  # fmt: skip
WATCHLIST = ["ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE", "AAPL"]
MONTH_CODES = "FGHJKMNQUVXZ"
HISTORY = 30
LIVE = 4


def month_symbol(root: str, last: date) -> str:
    return f"{root}{MONTH_CODES[last.month - 1]}{last.year % 10}"


def open_now(zone: str, now: datetime) -> str:
    """IB's hours string with a session from yesterday to tomorrow (exchange time)."""
    today = now.astimezone(ZoneInfo(zone)).date()
    first, last = today - timedelta(days=1), today + timedelta(days=1)
    return f"{first:%Y%m%d}:0000-{last:%Y%m%d}:2359"


def closed_until(zone: str, now: datetime, opens: str) -> tuple[str, datetime]:
    """IB's hours string closed today and tomorrow, with a session opening the day after at
    ``opens`` (HHMM, exchange time); and that opening."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    later = today + timedelta(days=2)
    start = datetime(later.year, later.month, later.day, int(opens[:2]), int(opens[2:]), tzinfo=tz)
    hours = ";".join(
        [
            f"{today:%Y%m%d}:CLOSED",
            f"{today + timedelta(days=1):%Y%m%d}:CLOSED",
            f"{later:%Y%m%d}:{opens}-{later:%Y%m%d}:2300",
        ]
    )
    return hours, start


def rows(start: int, closes: list[float], volume: float = 100) -> list[list[float]]:
    return [[start + 5 * i, c, c, c, c, volume] for i, c in enumerate(closes)]


def prices(base: float, tick: float, n: int) -> list[float]:
    """``n`` prices on the ``tick`` grid from ``base`` (up and down by up to 6 ticks)."""
    return [round(base + tick * (i % 7), 8) for i in range(n)]


def test_the_issue_watchlist_end_to_end(tmp_path, state_log):  # noqa: F811
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo("America/Chicago")).date()
    # Three ES months: one inside the roll window (3 days), the front month, the next one.
    months = [today + timedelta(days=d) for d in (3, 24, 115)]
    front = month_symbol("ES", months[1])
    start = int(time.time()) // 60 * 60 - 1200
    sap_hours, sap_opens = closed_until("Europe/Berlin", now, "0900")
    spx_hours, spx_opens = closed_until("America/Chicago", now, "0830")

    def history_of(base: float, tick: float, volume: float = 100) -> dict:
        return {"5": rows(start - HISTORY * 5, prices(base, tick, HISTORY), volume)}

    symbols = [
        {"symbol": f"ES-{i}", "con_id": 700 + i, "sec_type": "FUT", "ib_symbol": "ES",
         "exchange": "CME", "local_symbol": month_symbol("ES", last),
         "last_trade_date": f"{last:%Y%m%d}", "multiplier": "50", "min_tick": 0.25,
         "time_zone_id": "US/Central", "trading_hours": open_now("America/Chicago", now),
         "liquid_hours": open_now("America/Chicago", now), "history": history_of(6000, 0.25)}
        for i, last in enumerate(months)
    ] + [
        {"symbol": "EUR.USD", "con_id": 12087792, "sec_type": "CASH", "ib_symbol": "EUR",
         "exchange": "IDEALPRO", "min_tick": 0.00005, "has_volume": False,
         "time_zone_id": "US/Eastern", "trading_hours": open_now("America/New_York", now),
         "liquid_hours": open_now("America/New_York", now),
         "history": history_of(1.08, 0.00005, 0)},
        {"symbol": "SAP", "con_id": 14204, "exchange": "IBIS", "primary_exchange": "IBIS",
         "currency": "EUR", "trading_class": "XETRA", "time_zone_id": "MET",
         "trading_hours": sap_hours, "liquid_hours": sap_hours, "history": history_of(180, 0.01)},
        {"symbol": "SPX", "con_id": 416904, "sec_type": "IND", "exchange": "CBOE",
         "has_volume": False, "time_zone_id": "US/Central", "trading_hours": spx_hours,
         "liquid_hours": spx_hours, "history": history_of(5990, 0.01, 0)},
        {"symbol": "AAPL", "con_id": 265598, "time_zone_id": "US/Eastern",
         "trading_hours": open_now("America/New_York", now),
         "liquid_hours": open_now("America/New_York", now), "history": history_of(190, 0.01)},
    ]  # fmt: skip
    streams = {"ES:FUT:CME": "ES-1", "EURUSD:CASH": "EUR.USD", "SAP:STK:IBIS:EUR": "SAP",
               "SPX:IND:CBOE": "SPX", "AAPL": "AAPL"}  # fmt: skip
    live = {
        "ES-1": rows(start, prices(6001, 0.25, LIVE), 12),
        "EUR.USD": rows(start, prices(1.0801, 0.00005, LIVE), 0),
        "SAP": rows(start, prices(181, 0.01, LIVE), 300),
        "SPX": rows(start, prices(5991, 0.01, LIVE), 0),
        "AAPL": rows(start, prices(191, 0.01, LIVE), 50),
    }

    gw = Gateway({"symbols": symbols}, workdir=tmp_path).start()
    rule = make_rule(name="Every bar", definition=EVERY_BAR)
    watchlist = make_watchlist(name="Issue 10", symbols=WATCHLIST)
    assert watchlist.symbols == WATCHLIST
    proc = start_worker(
        "--feed", "ib", "--rule", str(rule.pk), "--watchlist", watchlist.name, "--start",
        log_path=tmp_path / "worker.log", SCALP_IB_HOST="127.0.0.1",
        SCALP_IB_PORT=str(gw.port), SCALP_IB_CLIENT_ID="17",
    )  # fmt: skip
    try:
        for name in live:
            gw.call("wait_subscribed", symbol=name, timeout=WAIT)
        wait_until(
            lambda: (s := engine_state()) and s.state == "running", timeout=WAIT, what="running"
        )
        assert not Signal.objects.exists(), "history bars must never emit"
        for name, bars in live.items():
            for t, o, h, low, c, v in bars:
                reply = gw.call("push_bar", symbol=name, time=t, open=o, high=h, low=low,
                                close=c, volume=v)  # fmt: skip
                assert reply["delivered"] == 1, f"{name} {t} reached no subscription"
        wait_until(
            lambda: Signal.objects.count() == LIVE * len(WATCHLIST),
            timeout=WAIT, what=f"{LIVE} signals per item",
        )  # fmt: skip
        state = engine_state()
        assert state.state == "running", state.message
        items = state.symbols
        logs = gw.call("logs")
    finally:
        gw_stopped = stop_worker(proc)
        gw.stop()
    assert gw_stopped == 0, (tmp_path / "worker.log").read_text()

    # Qualified: the front month outside the 5-day roll window, each contract as IB has it.
    contracts = {item: items[item]["contract"] for item in WATCHLIST}
    assert contracts == {
        "ES:FUT:CME": {"local_symbol": front, "sec_type": "FUT", "exchange": "CME",
                       "currency": "USD", "min_tick": 0.25},
        "EURUSD:CASH": {"local_symbol": "EUR.USD", "sec_type": "CASH", "exchange": "IDEALPRO",
                        "currency": "USD", "min_tick": 0.00005},
        "SAP:STK:IBIS:EUR": {"local_symbol": "SAP", "sec_type": "STK", "exchange": "IBIS",
                             "currency": "EUR", "min_tick": 0.01},
        "SPX:IND:CBOE": {"local_symbol": "SPX", "sec_type": "IND", "exchange": "CBOE",
                         "currency": "USD", "min_tick": 0.01},
        "AAPL": {"local_symbol": "AAPL", "sec_type": "STK", "exchange": "SMART",
                 "currency": "USD", "min_tick": 0.01},
    }  # fmt: skip

    # Warmed up from the right contract with the right data type; live bars likewise.
    history = {}
    for request in logs["history"]:
        history.setdefault(request["symbol"], set()).add(request["what_to_show"])
    assert history == {"ES-1": {"TRADES"}, "EUR.USD": {"MIDPOINT"}, "SAP": {"TRADES"},
                       "SPX": {"TRADES"}, "AAPL": {"TRADES"}}  # fmt: skip
    assert {s["symbol"]: s["what_to_show"] for s in logs["subscribed"]} == {
        "ES-1": "TRADES", "EUR.USD": "MIDPOINT", "SAP": "TRADES", "SPX": "TRADES",
        "AAPL": "TRADES",
    }  # fmt: skip
    warming = [m for s, m in state_log() if s == "warming_up"]
    assert warming[0] == f"Loading history for {', '.join(WATCHLIST)}…"

    # Signals of every item, stored under its item text with its contract.
    stored = {}
    for signal in Signal.objects.order_by("time", "symbol"):
        stored.setdefault(signal.symbol, []).append(signal)
    assert sorted(stored) == sorted(WATCHLIST)
    for item, name in streams.items():
        assert [int(s.time.timestamp()) for s in stored[item]] == [
            row[0] + 5 for row in live[name]
        ], item
        assert all(s.contract == contracts[item] for s in stored[item]), item
    es_prices = [float(s.price) for s in stored["ES:FUT:CME"]]
    assert es_prices == [row[4] for row in live["ES-1"]]

    # Hours: each item's own, from its contract details.
    markets = {item: (items[item]["open"], items[item]["market"]) for item in WATCHLIST}
    assert markets == {
        "ES:FUT:CME": (True, "trading (CME Globex)"),
        "EURUSD:CASH": (True, "trading (IDEALPRO FX)"),
        "SAP:STK:IBIS:EUR": (False, f"closed, opens {sap_opens:%a} 09:00 Europe/Berlin"),
        "SPX:IND:CBOE": (False, f"closed, opens {spx_opens:%a} 08:30 America/Chicago"),
        "AAPL": (True, "trading (US stocks)"),
    }
    closed = (
        f"SAP:STK:IBIS:EUR — closed, opens {sap_opens:%a} 09:00 Europe/Berlin; SPX:IND:CBOE — "
        f"closed, opens {spx_opens:%a} 08:30 America/Chicago (IB sends no realtime bars while "
        "a market is closed)."
    )
    assert closed in [m for _, m in state_log()]
