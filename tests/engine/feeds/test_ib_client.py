"""library.IBClient, the adapter over the IB library, against the fake TWS (the real wire
protocol, through ib_async or ib_insync): the library's objects in, the project's types out.

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from engine.core.bars import Bar
from engine.core.instruments import parse_item
from engine.feeds.ib.library import IBClient, IBContract, StockContract
from tests.engine.feeds.support import WAIT, make_bars
from tests.faketws import MAX_SERVER_VERSION, MIN_SERVER_VERSION

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]

AAPL = StockContract(
    symbol="AAPL",
    con_id=265598,
    ib_symbol="AAPL",
    exchange="SMART",
    currency="USD",
    primary_exchange="NASDAQ",
    local_symbol="AAPL",
    trading_class="NMS",
)


class Errors(list):
    """An error callback keeping the requests' errors (not the farm notices, request id -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def __call__(self, req_id: int, code: int, message: str, symbol: str | None) -> None:
        if req_id != -1:
            self.append((req_id, code, message, symbol))
            self.arrived.set()


async def connected(gw, errors: Errors | None = None) -> IBClient:
    client = IBClient()
    if errors is not None:
        client.on_error(errors)
    await client.connect("127.0.0.1", gw.port, 21, timeout=3)
    return client


def as_bars(symbol: str, rows, seconds: int = 5) -> list[Bar]:
    return [Bar(symbol, t, seconds, o, h, low, c, v) for t, o, h, low, c, v in rows]


async def test_connection_calls(gateway):
    client = IBClient()
    assert not client.is_connected()
    await client.connect("127.0.0.1", gateway.port, 21, timeout=3)
    assert client.is_connected()
    assert MIN_SERVER_VERSION <= client.server_version() <= MAX_SERVER_VERSION
    assert client.managed_accounts() == ["DU1234567"]
    when = await client.current_time()
    assert when.utcoffset() is not None
    assert when.timestamp() == pytest.approx(time.time(), abs=5)
    lost = asyncio.Event()
    client.on_disconnected(lost.set)
    await gateway.drop_connections()
    await asyncio.wait_for(lost.wait(), WAIT)
    assert not client.is_connected()
    client.disconnect()  # already gone: quiet


async def test_find_stocks_and_the_reason_for_none(gateway):
    errors = Errors()
    client = await connected(gateway, errors)
    trading, liquid, zone = gateway.symbols["AAPL"].schedule(time.time())
    assert await client.find_stocks("AAPL", "SMART", "USD") == [
        replace(AAPL, min_tick="0.01", trading_hours=trading, liquid_hours=liquid,
                time_zone_id=zone, long_name="APPLE INC", market_name="NMS")
    ]  # fmt: skip
    assert zone == "US/Eastern" and "CLOSED" in trading
    assert errors == []
    assert await client.find_stocks("ZZZZ", "SMART", "USD") == []
    assert [(code, symbol) for _, code, _, symbol in errors] == [(200, "ZZZZ")]
    client.disconnect()


async def test_history_bars_are_bars_of_the_asked_size(gateway):
    client = await connected(gateway)
    t0 = gateway.t0
    bars = await client.history_bars(AAPL, bar_seconds=5, duration=1800, use_rth=False)
    assert bars == as_bars("AAPL", make_bars(t0 - 500, 100, price=190.0))
    request = gateway.history_log[-1]
    assert (request["duration"], request["bar_size"], request["what_to_show"]) == (
        "1800 S", "5 secs", "TRADES"
    )  # fmt: skip
    assert (request["format_date"], request["use_rth"], request["end"]) == ("2", False, "")

    minutes = await client.history_bars(AAPL, bar_seconds=60, duration=86401, use_rth=True)
    assert minutes == as_bars("AAPL", make_bars(t0 - 1800, 30, seconds=60, price=189.0), 60)
    request = gateway.history_log[-1]
    assert (request["duration"], request["bar_size"], request["use_rth"]) == (
        "2 D", "1 min", True
    )  # fmt: skip
    client.disconnect()


async def test_history_bars_include_the_one_still_forming(gateway):
    now = int(time.time())
    rows = [(now - 65, 1.0, 2.0, 0.5, 1.5, 10), (now - 2, 1.5, 1.75, 1.25, 1.6, 3)]
    gateway.set_history("MSFT", 5, rows)
    client = await connected(gateway)
    (msft,) = await client.find_stocks("MSFT", "SMART", "USD")
    bars = await client.history_bars(msft, bar_seconds=5, duration=120, use_rth=False)
    assert bars == as_bars("MSFT", rows)  # the feed drops the forming one, not the adapter
    client.disconnect()


async def test_realtime_bars_arrive_once_each_until_cancelled(gateway):
    client = await connected(gateway)
    got: list[Bar] = []
    arrived = asyncio.Event()

    def on_bar(bar: Bar) -> None:
        got.append(bar)
        arrived.set()

    handle = client.subscribe_realtime_bars(AAPL, use_rth=False, on_bar=on_bar)
    assert handle.symbol == "AAPL"
    sub = await gateway.wait_subscribed("AAPL")
    assert (sub.req_id, sub.what_to_show, sub.use_rth) == (handle.req_id, "TRADES", False)
    rows = make_bars(gateway.t0, 3, price=191.0)
    for row in rows:
        arrived.clear()
        await gateway.push_bar("AAPL", *row)
        await asyncio.wait_for(arrived.wait(), WAIT)
    assert got == as_bars("AAPL", rows)
    assert all(type(b.time) is int and type(b.volume) is float for b in got)

    client.cancel_realtime_bars(handle)
    await gateway.wait_cancelled("AAPL")
    assert await gateway.push_bar("AAPL", gateway.t0 + 15, 1, 1, 1, 1, 1) == 0
    client.cancel_realtime_bars(handle)  # twice: nothing more to cancel, quiet
    client.disconnect()
    client.cancel_realtime_bars(handle)  # after the connection: quiet
    assert len(gateway.cancel_log) == 1


async def test_a_refused_subscription_is_reported_with_its_request_id(gateway):
    gateway.deny_realtime("MSFT", 354)
    errors = Errors()
    client = await connected(gateway, errors)
    (msft,) = await client.find_stocks("MSFT", "SMART", "USD")
    handle = client.subscribe_realtime_bars(msft, use_rth=True, on_bar=lambda bar: None)
    await asyncio.wait_for(errors.arrived.wait(), WAIT)
    ((req_id, code, _, symbol),) = errors
    assert (req_id, code, symbol) == (handle.req_id, 354, "MSFT")
    client.disconnect()


async def test_find_contracts_for_any_type_names_errors_by_item(gateway):
    gateway.add_symbol("EUR.USD", con_id=12087792, sec_type="CASH", ib_symbol="EUR",
                       exchange="IDEALPRO", min_tick=0.00005, hours="fx", has_volume=False,
                       long_name="European Monetary Union Euro")  # fmt: skip
    for local, last in (("ESZ6", "20261218"), ("ESH7", "20270319")):
        gateway.add_symbol(local, sec_type="FUT", ib_symbol="ES", exchange="CME",
                           last_trade_date=last, multiplier="50", min_tick=0.25,
                           hours="cme")  # fmt: skip
    errors = Errors()
    client = await connected(gateway, errors)
    (fx,) = await client.find_contracts(parse_item("EURUSD:CASH"))
    trading, liquid, zone = gateway.symbols["EUR.USD"].schedule(time.time())
    assert fx == IBContract(
        symbol="EURUSD:CASH", con_id=12087792, ib_symbol="EUR", exchange="IDEALPRO",
        currency="USD", local_symbol="EUR.USD", trading_class="EUR", sec_type="CASH",
        min_tick="0.00005", trading_hours=trading, liquid_hours=liquid, time_zone_id=zone,
        long_name="European Monetary Union Euro", market_name="EUR",
    )  # fmt: skip
    months = await client.find_contracts(parse_item("ES:FUT:CME"))
    assert [(m.local_symbol, m.last_trade_date, m.multiplier, m.min_tick) for m in months] == [
        ("ESZ6", "20261218", "50", "0.25"), ("ESH7", "20270319", "50", "0.25")
    ]  # fmt: skip
    assert {m.symbol for m in months} == {"ES:FUT:CME"}
    assert await client.find_contracts(parse_item("XX:FUT:CME")) == []
    assert [(code, symbol) for _, code, _, symbol in errors] == [(200, "XX:FUT:CME")]
    client.disconnect()


async def test_midpoint_bars_of_a_pair_carry_volume_zero(gateway):
    gateway.add_symbol("EUR.USD", con_id=12087792, sec_type="CASH", ib_symbol="EUR",
                       exchange="IDEALPRO", min_tick=0.00005, hours="fx", has_volume=False,
                       history={5: [(gateway.t0 - 10, 1.08, 1.0801, 1.0799, 1.08005, 0),
                                    (gateway.t0 - 5, 1.08005, 1.0801, 1.08, 1.0801, 0)]},
                       )  # fmt: skip
    errors = Errors()
    client = await connected(gateway, errors)
    (fx,) = await client.find_contracts(parse_item("EURUSD:CASH"))
    bars = await client.history_bars(fx, bar_seconds=5, duration=1800, use_rth=False)
    assert gateway.history_log[-1]["what_to_show"] == "MIDPOINT"
    assert bars == [
        Bar("EURUSD:CASH", gateway.t0 - 10, 5, 1.08, 1.0801, 1.0799, 1.08005, 0.0),
        Bar("EURUSD:CASH", gateway.t0 - 5, 5, 1.08005, 1.0801, 1.08, 1.0801, 0.0),
    ]
    got: list[Bar] = []
    arrived = asyncio.Event()
    handle = client.subscribe_realtime_bars(
        fx, use_rth=False, on_bar=lambda bar: (got.append(bar), arrived.set())
    )
    sub = await gateway.wait_subscribed("EUR.USD")
    assert (sub.req_id, sub.what_to_show) == (handle.req_id, "MIDPOINT")
    await gateway.push_bar("EUR.USD", gateway.t0, 1.0801, 1.0802, 1.08, 1.08015, 0)
    await asyncio.wait_for(arrived.wait(), WAIT)
    assert got == [Bar("EURUSD:CASH", gateway.t0, 5, 1.0801, 1.0802, 1.08, 1.08015, 0.0)]
    assert errors == []
    client.disconnect()
