"""The fake TWS itself, driven by the real IB client library (ib_async or ib_insync)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faketws import (
    PACING_VIOLATION,
    ControlClient,
    FakeTWS,
    java_double,
    pacing_violations,
    parse_end_time,
    preset_hours,
)

try:
    import ib_async as ibapi
except ImportError:
    import ib_insync as ibapi

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]
ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0


def bars_from(start: int, count: int, seconds: int = 5):
    return [(start + i * seconds, 10 + i, 11 + i, 9 + i, 10.5 + i, 100 + i) for i in range(count)]


async def connect(port: int, client_id: int = 1, **options) -> ibapi.IB:
    ib = ibapi.IB()
    options.setdefault("readonly", True)
    await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=3, **options)
    return ib


@pytest.fixture
async def gw():
    t0 = int(time.time()) // 60 * 60 - 600
    gateway = FakeTWS()
    gateway.add_symbol(
        "AAPL",
        con_id=265598,
        primary_exchange="NASDAQ",
        time_zone_id="US/Eastern",
        trading_hours="20261123:0400-20261123:2000",
        liquid_hours="20261123:0930-20261123:1600",
        history={5: bars_from(t0 - 600, 120)},
    )
    gateway.t0 = t0
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def test_handshake_and_contract_details(gw):
    ib = await connect(gw.port)
    assert ib.isConnected()
    assert ib.managedAccounts() == ["DU1234567"]
    assert ib.client.serverVersion() >= 176
    (details,) = await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD"))
    c = details.contract
    assert (c.conId, c.symbol, c.secType, c.primaryExchange, c.currency) == (
        265598, "AAPL", "STK", "NASDAQ", "USD"
    )  # fmt: skip
    assert details.timeZoneId == "US/Eastern"
    assert details.tradingHours == "20261123:0400-20261123:2000"
    assert details.liquidHours == "20261123:0930-20261123:1600"
    assert (await ib.reqCurrentTimeAsync()).timestamp() == pytest.approx(time.time(), abs=5)
    ib.disconnect()


async def test_unknown_symbol_is_error_200(gw):
    ib = await connect(gw.port)
    errors = []
    ib.errorEvent += lambda req_id, code, msg, contract=None: errors.append(code)
    assert await ib.reqContractDetailsAsync(ibapi.Stock("NOPE", "SMART", "USD")) == []
    assert errors == [200]
    ib.disconnect()


async def test_full_startup_sync_answers_every_request(gw, caplog):
    caplog.set_level(logging.WARNING)
    ib = await connect(gw.port, readonly=False)
    assert ib.isConnected()
    assert not [r for r in caplog.records if "timed out" in r.getMessage()]
    sent = {r.msg_id for r in gw.requests}
    assert {71, 61, 5, 99, 6, 7} <= sent
    ib.disconnect()


async def test_history_five_seconds_and_minutes(gw):
    ib = await connect(gw.port)
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD")))[0].contract
    end = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(gw.t0))
    bars = await ib.reqHistoricalDataAsync(
        contract, end, "300 S", "5 secs", "TRADES", False, formatDate=2
    )
    assert [int(b.date.timestamp()) for b in bars] == list(range(gw.t0 - 300, gw.t0, 5))
    assert bars[0].barCount == 1
    end = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(gw.t0 - 300))
    minutes = await ib.reqHistoricalDataAsync(
        contract, end, "120 S", "1 min", "TRADES", True, formatDate=2
    )
    assert [int(b.date.timestamp()) for b in minutes] == [gw.t0 - 420, gw.t0 - 360]
    assert minutes[0].volume == sum(100 + i for i in range(36, 48))
    assert gw.history_log[-1]["use_rth"] is True
    ib.disconnect()


async def test_realtime_bars_pushed_on_demand_and_cancelled(gw):
    ib = await connect(gw.port)
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD")))[0].contract
    bars = ib.reqRealTimeBars(contract, 5, "TRADES", False)
    arrived = asyncio.Event()
    bars.updateEvent += lambda *_: arrived.set()
    await gw.wait_subscribed("AAPL")
    assert await gw.push_bar("AAPL", gw.t0, 1.0, 2.0, 0.5, 1.5, 700) == 1
    await asyncio.wait_for(arrived.wait(), WAIT)
    bar = bars[-1]
    assert (int(bar.time.timestamp()), bar.open_, bar.high, bar.low, bar.close, bar.volume) == (
        gw.t0, 1.0, 2.0, 0.5, 1.5, 700
    )  # fmt: skip
    ib.cancelRealTimeBars(bars)
    await gw.wait_cancelled("AAPL")
    assert gw.active_subscriptions() == []
    assert await gw.push_bar("AAPL", gw.t0 + 5, 1, 1, 1, 1, 1) == 0
    ib.disconnect()


async def test_permission_errors_and_injected_errors(gw):
    gw.deny_realtime("AAPL", 10089)
    gw.deny_history("AAPL", 162, "Historical data request pacing violation")
    ib = await connect(gw.port)
    errors = []
    ib.errorEvent += lambda req_id, code, msg, contract=None: errors.append((req_id, code, msg))
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD")))[0].contract
    bars = ib.reqRealTimeBars(contract, 5, "TRADES", False)
    assert (
        len(await ib.reqHistoricalDataAsync(contract, "", "60 S", "5 secs", "TRADES", False, 2))
        == 0
    )
    gw.inject_error(-1, 1100)
    await asyncio.sleep(0.05)
    codes = [code for _, code, _ in errors]
    assert codes == [10089, 162, 1100]
    assert errors[0][0] == bars.reqId
    assert "pacing violation" in errors[1][2]
    ib.disconnect()


async def test_client_id_in_use_is_refused(gw):
    first = await connect(gw.port, client_id=7)
    second = ibapi.IB()
    errors = []
    second.errorEvent += lambda req_id, code, msg, contract=None: errors.append(code)
    with pytest.raises((TimeoutError, ConnectionError)):
        await second.connectAsync("127.0.0.1", gw.port, clientId=7, timeout=1, readonly=True)
    assert errors == [326]
    assert first.isConnected()
    first.disconnect()


async def test_drop_stop_and_restart_on_the_same_port(gw):
    ib = await connect(gw.port)
    lost = asyncio.Event()
    ib.disconnectedEvent += lost.set
    port = gw.port
    await gw.drop_connections()
    await asyncio.wait_for(lost.wait(), WAIT)
    ib = await connect(gw.port)  # still listening
    await gw.stop()
    assert not ib.isConnected()
    with pytest.raises(OSError):
        await ibapi.IB().connectAsync("127.0.0.1", port, clientId=2, timeout=1)
    await gw.start()
    assert gw.port == port
    ib = await connect(gw.port, client_id=3)
    assert ib.isConnected()
    await gw.wait_connections(3)
    ib.disconnect()


async def test_history_ends_at_end_date_time_and_builds_hours(gw):
    ib = await connect(gw.port)
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD")))[0].contract
    # An end in the middle of a minute: only the minutes that end at or before it.
    end = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(gw.t0 - 270))
    minutes = await ib.reqHistoricalDataAsync(
        contract, end, "180 S", "1 min", "TRADES", False, formatDate=2
    )
    assert [int(b.date.timestamp()) for b in minutes] == [gw.t0 - 420, gw.t0 - 360]
    assert gw.history_log[-1]["end"] == end
    # Hourly bars from the 5-second history, one per UTC hour that has bars.
    hours = await ib.reqHistoricalDataAsync(contract, "", "1 D", "1 hour", "TRADES", False, 2)
    rows = bars_from(gw.t0 - 600, 120)
    starts = sorted({t - t % 3600 for t, *_ in rows})
    assert [int(b.date.timestamp()) for b in hours] == starts
    assert sum(b.volume for b in hours) == sum(row[5] for row in rows)
    ib.disconnect()


async def test_history_pacing_is_counted_and_enforced_like_tws(gw):
    gw.enforce_pacing = True
    ib = await connect(gw.port)
    errors = []
    ib.errorEvent += lambda req_id, code, msg, contract=None: errors.append((code, msg))
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock("AAPL", "SMART", "USD")))[0].contract

    async def ask(duration: str) -> int:
        rows = await ib.reqHistoricalDataAsync(contract, "", duration, "5 secs", "TRADES", False, 2)
        return len(rows)

    assert await ask("1800 S") > 0
    assert await ask("1800 S") == 0  # identical within 15 s
    assert errors == [(162, PACING_VIOLATION)]
    for seconds in (1500, 1510, 1520):
        assert await ask(f"{seconds} S") > 0
    assert await ask("1530 S") == 0  # the sixth for AAPL within 2 s
    assert [why for _, why in gw.pacing_violations()][0].startswith("identical to a request")
    assert [index for index, _ in gw.pacing_violations()] == [1, 5]
    assert "the sixth request for AAPL" in gw.state()["pacing_violations"][1]
    assert gw.state()["history_requests"] == 6
    ib.disconnect()


async def test_pacing_violations_count_sixty_requests_in_ten_minutes():
    log = [
        {"symbol": f"S{i % 10}", "end": str(i), "bar_size": "5 secs", "duration": "60 S",
         "use_rth": False, "what_to_show": "TRADES", "at": 10.0 * i}
        for i in range(62)
    ]  # fmt: skip
    assert pacing_violations(log) == []  # 62 requests, ten seconds apart: 61 in 610 s
    log[61]["at"] = 599.0
    log.sort(key=lambda r: r["at"])
    assert pacing_violations(log) == [
        (60, "the 61st request in 599 s"),  # 61 from 0 s to 599 s
        (61, "the 61st request in 590 s"),  # and from 10 s to 600 s
    ]


async def test_parse_end_time():
    assert parse_end_time("", 123.0) == 123.0
    assert parse_end_time("20251216 14:30:00 UTC", 0) == 1765895400
    assert parse_end_time("20251216-14:30:00", 0) == 1765895400
    assert parse_end_time("20251216 09:30:00 US/Eastern", 0) == 1765895400


async def test_separate_process_with_control_socket(tmp_path):
    t0 = int(time.time()) // 60 * 60 - 600
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "symbols": [{"symbol": "MSFT", "con_id": 272093,
                             "history": {"5": bars_from(t0, 10)}}],
                "actions": [{"after": 0, "cmd": "push_bar", "symbol": "MSFT", "time": t0 + 50,
                             "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 5}],
            }
        )
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faketws", "--script", str(script),
        cwd=ROOT, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        ports = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        ctl = ControlClient("127.0.0.1", ports["control_port"])
        ib = await connect(ports["port"])
        contract = (await ib.reqContractDetailsAsync(ibapi.Stock("MSFT", "SMART", "USD")))[
            0
        ].contract
        history = await ib.reqHistoricalDataAsync(
            contract, "", "900 S", "5 secs", "TRADES", False, 2
        )
        assert len(history) == 11  # the scripted push is stored as history too
        bars = ib.reqRealTimeBars(contract, 5, "TRADES", False)
        arrived = asyncio.Event()
        bars.updateEvent += lambda *_: arrived.set()
        await ctl.call("wait_subscribed", symbol="MSFT")
        reply = await ctl.call("push_bar", symbol="MSFT", time=t0 + 55, open=1, high=2, low=0.5,
                               close=1.75, volume=9)  # fmt: skip
        assert reply["delivered"] == 1
        await asyncio.wait_for(arrived.wait(), WAIT)
        assert bars[-1].close == 1.75
        lost = asyncio.Event()
        ib.disconnectedEvent += lost.set
        await ctl.call("stop")
        await asyncio.wait_for(lost.wait(), WAIT)
        state = await ctl.call("start")
        assert state["port"] == ports["port"] and state["listening"]
        ib = await connect(ports["port"])
        with pytest.raises(RuntimeError, match="unknown command"):
            await ctl.call("explode")
        ib.disconnect()
        await ctl.call("shutdown")
        await ctl.close()
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def markets():
    """A gateway knowing a future's months, an FX pair, an index, a coin and a stock listed
    twice (two currencies), with hours presets around its clock."""
    t0 = int(time.time()) // 60 * 60 - 600
    gateway = FakeTWS()
    for local, last, con_id in (("ESZ6", "20261218", 1), ("ESH7", "20270319", 2)):
        gateway.add_symbol(local, con_id=con_id, sec_type="FUT", ib_symbol="ES", exchange="CME",
                           last_trade_date=last, multiplier="50", min_tick=0.25, hours="cme",
                           long_name="E-mini S&P 500")  # fmt: skip
    gateway.add_symbol("EUR.USD", con_id=3, sec_type="CASH", ib_symbol="EUR",
                       exchange="IDEALPRO", min_tick=0.00005, hours="fx", has_volume=False,
                       history={5: bars_from(t0 - 600, 120)})  # fmt: skip
    gateway.add_symbol("SPX", con_id=4, sec_type="IND", exchange="CBOE", hours="cboe_index",
                       has_volume=False, history={5: bars_from(t0 - 600, 120)})  # fmt: skip
    gateway.add_symbol("BTC", con_id=5, sec_type="CRYPTO", exchange="PAXOS",
                       local_symbol="BTC.USD", min_tick=1e-8, hours="crypto",
                       history={5: bars_from(t0 - 600, 120)})  # fmt: skip
    gateway.add_symbol("SAP", con_id=6, exchange="IBIS", primary_exchange="IBIS",
                       currency="EUR", hours="xetra")  # fmt: skip
    gateway.add_symbol("SAP.USD", con_id=7, ib_symbol="SAP", exchange="IBIS",
                       primary_exchange="IBIS", currency="USD", local_symbol="SAP")  # fmt: skip
    gateway.t0 = t0
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def test_contract_details_of_every_security_type(markets):
    ib = await connect(markets.port)
    months = await ib.reqContractDetailsAsync(ibapi.Contract(secType="FUT", symbol="ES",
                                                             exchange="CME"))  # fmt: skip
    assert [
        (d.contract.localSymbol, d.contract.lastTradeDateOrContractMonth, d.contract.multiplier,
         d.contract.tradingClass, d.contractMonth, d.minTick, d.timeZoneId, d.underSymbol)
        for d in months
    ] == [
        ("ESZ6", "20261218", "50", "ES", "202612", 0.25, "US/Central", "ES"),
        ("ESH7", "20270319", "50", "ES", "202703", 0.25, "US/Central", "ES"),
    ]  # fmt: skip
    # CME Globex: sessions from 17:00 the evening before to 16:00, weekends CLOSED.
    hours = months[0].tradingHours.split(";")
    assert all(h.endswith(":CLOSED") or h[8:14] == ":1700-" and h.endswith(":1600") for h in hours)
    assert any(h.endswith(":CLOSED") for h in hours)
    (fx,) = await ib.reqContractDetailsAsync(ibapi.Forex("EURUSD"))
    c = fx.contract
    assert (c.secType, c.symbol, c.currency, c.exchange, c.localSymbol) == (
        "CASH", "EUR", "USD", "IDEALPRO", "EUR.USD"
    )  # fmt: skip
    assert fx.minTick == 0.00005 and fx.timeZoneId == "US/Eastern"
    (spx,) = await ib.reqContractDetailsAsync(ibapi.Index("SPX", "CBOE"))
    assert (spx.contract.secType, spx.contract.currency, spx.timeZoneId) == (
        "IND", "USD", "US/Central"
    )  # fmt: skip
    (btc,) = await ib.reqContractDetailsAsync(ibapi.Crypto("BTC", "PAXOS", "USD"))
    assert (btc.contract.localSymbol, btc.minTick) == ("BTC.USD", 1e-8)
    both = await ib.reqContractDetailsAsync(ibapi.Stock("SAP", "IBIS"))
    assert sorted((d.contract.currency, d.contract.conId) for d in both) == [
        ("EUR", 6), ("USD", 7)
    ]  # fmt: skip
    (sap,) = await ib.reqContractDetailsAsync(ibapi.Stock("SAP", "IBIS", "EUR"))
    assert (sap.contract.exchange, sap.contract.primaryExchange, sap.timeZoneId) == (
        "IBIS", "IBIS", "MET"
    )  # fmt: skip
    assert not await ib.reqContractDetailsAsync(ibapi.Future("ES", exchange="EUREX"))
    ib.disconnect()


async def test_min_tick_goes_out_as_java_writes_a_double():
    # What TWS (Java) sends; the contract-details test above reads them back exactly.
    assert java_double(0.00005) == "5.0E-5" and java_double(1e-8) == "1.0E-8"
    assert java_double(0.25) == "0.25" and java_double(0.01) == "0.01"


async def test_quote_bars_have_no_volume_and_data_types_are_checked(markets):
    ib = await connect(markets.port)
    (fx,) = await ib.qualifyContractsAsync(ibapi.Forex("EURUSD"))
    bars = await ib.reqHistoricalDataAsync(fx, "", "1800 S", "5 secs", "MIDPOINT", False,
                                           formatDate=2)  # fmt: skip
    assert len(bars) == 120 and {(b.volume, b.barCount) for b in bars} == {(-1, -1)}
    assert not await ib.reqHistoricalDataAsync(fx, "", "1800 S", "5 secs", "TRADES", False,
                                               formatDate=2)  # fmt: skip
    assert markets.history_log[-1]["what_to_show"] == "TRADES"
    (btc,) = await ib.qualifyContractsAsync(ibapi.Crypto("BTC", "PAXOS", "USD"))
    coins = await ib.reqHistoricalDataAsync(btc, "", "1800 S", "5 secs", "AGGTRADES", False,
                                            formatDate=2)  # fmt: skip
    assert len(coins) == 120 and coins[0].volume == 100
    (spx,) = await ib.qualifyContractsAsync(ibapi.Index("SPX", "CBOE"))
    index = await ib.reqHistoricalDataAsync(spx, "", "1800 S", "5 secs", "TRADES", False,
                                            formatDate=2)  # fmt: skip
    assert {b.volume for b in index} == {-1}

    refused = ib.reqRealTimeBars(fx, 5, "TRADES", False)
    quotes = ib.reqRealTimeBars(fx, 5, "MIDPOINT", False)
    await markets.wait_until(lambda: len(markets.active_subscriptions("EUR.USD")) == 1)
    assert markets.active_subscriptions("EUR.USD")[0].req_id == quotes.reqId != refused.reqId
    arrived = asyncio.Event()
    quotes.updateEvent += lambda bars, new: arrived.set()
    await markets.push_bar("EUR.USD", markets.t0, 1.08, 1.0801, 1.0799, 1.08005, 0)
    await asyncio.wait_for(arrived.wait(), WAIT)
    assert (quotes[-1].close, quotes[-1].volume) == (1.08005, -1)
    ib.disconnect()


async def test_hours_presets_in_ibs_format():
    now = datetime(2026, 12, 5, 15, tzinfo=UTC).timestamp()  # a Saturday
    trading, liquid, zone = preset_hours("cme", now, days_before=1, days_after=3)
    assert zone == "US/Central"
    assert trading == (
        "20261203:1700-20261204:1600;20261205:CLOSED;20261206:1700-20261207:1600;"
        "20261207:1700-20261208:1600"
    )
    assert liquid == (
        "20261204:0830-20261204:1500;20261205:CLOSED;20261206:CLOSED;20261207:0830-20261207:1500;"
        "20261208:0830-20261208:1500"
    )
    trading, _, zone = preset_hours("xetra", now, days_before=0, days_after=2)
    assert (zone, trading) == ("MET", "20261205:CLOSED;20261206:CLOSED;20261207:0800-20261207:1730")
