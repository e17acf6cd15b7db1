"""The fake TWS itself, driven by the real IB client library (ib_async or ib_insync)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faketws import (
    COMPETING_HISTORY,
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


# ---- faults of a trading day ---------------------------------------------------------------


class Watch:
    """One client with a realtime subscription per symbol: what arrived, which errors."""

    def __init__(self, ib: ibapi.IB):
        self.ib = ib
        self.errors: list[tuple[int, int, str]] = []
        self.arrived: list[tuple[str, int]] = []  # (symbol, bar time)
        self.bars: dict[str, object] = {}
        self._news = asyncio.Event()
        ib.errorEvent += self._error

    def _error(self, req_id, code, msg, contract=None):
        self.errors.append((req_id, code, msg))
        self._news.set()

    async def subscribe(self, gw: FakeTWS, symbol: str):
        contract = (await self.ib.reqContractDetailsAsync(ibapi.Stock(symbol, "SMART", "USD")))[
            0
        ].contract
        bars = self.ib.reqRealTimeBars(contract, 5, "TRADES", False)
        self.bars[symbol] = bars

        def on_bar(bars, has_new):
            self.arrived.append((symbol, int(bars[-1].time.timestamp())))
            self._news.set()

        bars.updateEvent += on_bar
        total = sum(s.symbol == symbol for s in gw.subscribe_log) + 1
        await gw.wait_subscribed(symbol, total=total)
        return bars

    async def news(self, predicate) -> None:
        """Until ``predicate()`` holds (checked after each error or bar that arrives)."""

        async def wait() -> None:
            while not predicate():
                self._news.clear()
                await self._news.wait()

        await asyncio.wait_for(wait(), WAIT)

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.errors]


async def push(gw: FakeTWS, symbol: str, t: int) -> int:
    return await gw.push_bar(symbol, t, 1.0, 2.0, 0.5, 1.5, 700)


async def history_times(ib: ibapi.IB, symbol: str) -> list[int]:
    contract = (await ib.reqContractDetailsAsync(ibapi.Stock(symbol, "SMART", "USD")))[0].contract
    bars = await ib.reqHistoricalDataAsync(contract, "", "1800 S", "5 secs", "TRADES", False, 2)
    return [int(b.date.timestamp()) for b in bars]


async def test_connectivity_lost_then_restored_with_data_kept(gw):
    watch = Watch(await connect(gw.port))
    await watch.subscribe(gw, "AAPL")
    assert gw.connectivity_lost() == 1
    await watch.news(lambda: 1100 in watch.codes())
    assert watch.errors == [
        (-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
    ]  # fmt: skip
    assert await push(gw, "AAPL", gw.t0) == 0, "no realtime bar while IB is away"
    assert gw.state()["ib_connected"] is False
    assert gw.t0 in await history_times(watch.ib, "AAPL"), "IB keeps the bar as history"
    assert gw.connectivity_restored(data_kept=True) == 1
    await watch.news(lambda: 1102 in watch.codes())
    assert watch.errors[-1] == (
        -1, 1102, "Connectivity between IB and Trader Workstation has been restored - data "
        "maintained."
    )  # fmt: skip
    assert await push(gw, "AAPL", gw.t0 + 5) == 1, "the same subscription delivers again"
    await watch.news(lambda: watch.arrived == [("AAPL", gw.t0 + 5)])
    assert len(gw.subscribe_log) == 1
    watch.ib.disconnect()


async def test_connectivity_restored_with_data_lost_silences_old_subscriptions(gw):
    watch = Watch(await connect(gw.port))
    old = await watch.subscribe(gw, "AAPL")
    gw.connectivity_lost()
    gw.connectivity_restored(data_kept=False)
    await watch.news(lambda: 1101 in watch.codes())
    assert watch.errors[-1] == (
        -1, 1101, "Connectivity between IB and Trader Workstation has been restored - data lost."
    )  # fmt: skip
    assert [s["muted"] for s in gw.state()["subscriptions"]] == [True]
    assert await push(gw, "AAPL", gw.t0) == 0, "the old subscription stays silent"
    watch.ib.cancelRealTimeBars(old)
    await gw.wait_cancelled("AAPL")
    await watch.subscribe(gw, "AAPL")
    assert await push(gw, "AAPL", gw.t0 + 5) == 1, "a new subscription delivers"
    await watch.news(lambda: watch.arrived == [("AAPL", gw.t0 + 5)])
    watch.ib.disconnect()


async def test_farm_blip_then_a_silent_subscription(gw):
    gw.add_symbol("MSFT", con_id=272093)
    watch = Watch(await connect(gw.port))
    await watch.subscribe(gw, "AAPL")
    await watch.subscribe(gw, "MSFT")
    assert gw.farm_broken() == 1
    await watch.news(lambda: 2103 in watch.codes())
    assert watch.errors[-1] == (-1, 2103, "Market data farm connection is broken:usfarm")
    assert await push(gw, "MSFT", gw.t0) == 0, "no bars while the farm is broken"
    assert gw.state()["broken_farms"] == ["usfarm"]
    assert gw.farm_ok(mute=["AAPL"]) == 1
    await watch.news(lambda: watch.codes()[-1] == 2104)
    assert watch.errors[-1] == (-1, 2104, "Market data farm connection is OK:usfarm")
    assert await push(gw, "MSFT", gw.t0 + 5) == 1
    assert await push(gw, "AAPL", gw.t0 + 5) == 0, "AAPL went quiet without a word"
    await watch.news(lambda: ("MSFT", gw.t0 + 5) in watch.arrived)
    assert watch.arrived == [("MSFT", gw.t0 + 5)]
    assert {s["symbol"]: s["muted"] for s in gw.state()["subscriptions"]} == {
        "AAPL": True, "MSFT": False
    }  # fmt: skip
    await watch.subscribe(gw, "AAPL")  # a second subscription, the first still silent
    assert await push(gw, "AAPL", gw.t0 + 10) == 1
    watch.ib.disconnect()


async def test_mute_stops_a_subscription_silently(gw):
    watch = Watch(await connect(gw.port))
    await watch.subscribe(gw, "AAPL")
    assert gw.mute("AAPL") == 1
    assert await push(gw, "AAPL", gw.t0) == 0
    assert gw.mute("AAPL") == 0, "nothing left to mute"
    await asyncio.sleep(0.05)
    assert watch.errors == [] and watch.arrived == []
    watch.ib.disconnect()


async def test_trade_bust_deactivates_the_subscription_and_the_library_resubscribes(gw):
    watch = Watch(await connect(gw.port))
    bars = await watch.subscribe(gw, "AAPL")
    assert gw.trade_bust("AAPL") == 1
    await watch.news(lambda: 10225 in watch.codes())
    assert watch.errors == [
        (bars.reqId, 10225, "Bust event occurred, current subscription is deactivated. Please "
         "resubscribe real-time bars immediately.")
    ]  # fmt: skip
    # ib_async and ib_insync cancel and request it again under the same id on 10225.
    await gw.wait_subscribed("AAPL", total=2)
    await gw.wait_cancelled("AAPL")
    assert [s["muted"] for s in gw.state()["subscriptions"]] == [False]
    assert await push(gw, "AAPL", gw.t0) == 1
    await watch.news(lambda: watch.arrived == [("AAPL", gw.t0)])
    watch.ib.disconnect()


async def test_competing_live_session_and_its_end(gw):
    gw.add_symbol("MSFT", con_id=272093, history={5: bars_from(gw.t0 - 600, 120)})
    watch = Watch(await connect(gw.port))
    aapl = await watch.subscribe(gw, "AAPL")
    await watch.subscribe(gw, "MSFT")
    assert gw.competing_session(True, ["AAPL"]) == 1
    await watch.news(lambda: 10197 in watch.codes())
    assert watch.errors == [(aapl.reqId, 10197, "No market data during competing live session")]
    assert await push(gw, "AAPL", gw.t0) == 0
    assert await push(gw, "MSFT", gw.t0) == 1
    assert await history_times(watch.ib, "AAPL") == []
    assert watch.errors[-1][1:] == (162, COMPETING_HISTORY)
    assert len(await history_times(watch.ib, "MSFT")) == 121
    second = await watch.subscribe(gw, "AAPL")  # a new subscription is told as well
    await watch.news(lambda: watch.errors[-1][:2] == (second.reqId, 10197))
    assert gw.state()["competing"] and gw.state()["competing_symbols"] == ["AAPL"]
    assert gw.competing_session(False) == 0
    assert await push(gw, "AAPL", gw.t0 + 5) == 2, "bars flow again to both subscriptions"
    await watch.news(lambda: watch.arrived.count(("AAPL", gw.t0 + 5)) == 2)
    assert gw.t0 in await history_times(watch.ib, "AAPL")
    gw.competing_session(True)  # every symbol
    assert await push(gw, "MSFT", gw.t0 + 10) == 0
    watch.ib.disconnect()


async def test_refuse_history_answers_the_next_requests_with_an_error(gw):
    watch = Watch(await connect(gw.port))
    gw.refuse_history(2)
    gw.refuse_history(1, 162, "Historical Market Data Service error message:HMDS query "
                      "returned no data: AAPL@SMART Trades")  # fmt: skip
    assert gw.state()["history_refusals"] == 3
    for _ in range(3):
        assert await history_times(watch.ib, "AAPL") == []
    assert [(c, m) for _, c, m in watch.errors] == [(162, PACING_VIOLATION)] * 2 + [
        (162, "Historical Market Data Service error message:HMDS query returned no data: "
         "AAPL@SMART Trades")
    ]  # fmt: skip
    assert len(await history_times(watch.ib, "AAPL")) == 120
    assert gw.state()["history_refusals"] == 0 and len(gw.history_log) == 4
    watch.ib.disconnect()


async def test_daily_restart_closes_refuses_then_listens_on_the_same_port(gw):
    ib = await connect(gw.port)
    lost = asyncio.Event()
    ib.disconnectedEvent += lost.set
    port = gw.port
    await gw.daily_restart(0.5)
    await asyncio.wait_for(lost.wait(), WAIT)
    assert not gw.listening and gw.state()["restarts"] == 1
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await gw.wait_until(lambda: gw.listening, timeout=WAIT)
    assert gw.port == port
    ib = await connect(port, client_id=2)
    assert ib.isConnected()
    ib.disconnect()
    await gw.daily_restart(60)
    await gw.stop()  # a stop calls the pending restart off
    await asyncio.sleep(0.05)
    assert gw._restart is None and not gw.listening


async def test_take_and_release_a_client_id(gw):
    gw.take_client_id(17)
    refused = ibapi.IB()
    errors = []
    refused.errorEvent += lambda req_id, code, msg, contract=None: errors.append(code)
    with pytest.raises((TimeoutError, ConnectionError)):
        await refused.connectAsync("127.0.0.1", gw.port, clientId=17, timeout=1, readonly=True)
    assert errors == [326]
    other = await connect(gw.port, client_id=18)
    gw.release_client_id(17)
    ib = await connect(gw.port, client_id=17)
    assert ib.isConnected() and gw.state()["client_ids"] == [17, 18, 17]
    ib.disconnect()
    other.disconnect()


async def test_hours_preset_always_is_open_around_the_clock():
    now = datetime(2026, 12, 5, 15, tzinfo=UTC).timestamp()  # a Saturday
    trading, liquid, zone = preset_hours("always", now, days_before=1, days_after=2)
    assert zone == "UTC" and trading == liquid == (
        "20261203:0000-20261204:0000;20261204:0000-20261205:0000;20261205:0000-20261206:0000;"
        "20261206:0000-20261207:0000"
    )  # fmt: skip
    spec = FakeTWS().add_symbol("ESZ6", sec_type="FUT", ib_symbol="ES", exchange="CME",
                                last_trade_date="20261218", hours="always")  # fmt: skip
    trading, liquid, zone = spec.schedule(now)
    days = trading.split(";")
    assert zone == "UTC" and trading == liquid and len(days) == 18
    assert all(d[8:] == f":0000-{d[14:22]}:0000" for d in days), days


async def until_state(ctl: ControlClient, predicate) -> dict:
    """Poll a gateway in another process until its state satisfies ``predicate``."""
    for _ in range(int(WAIT / 0.025)):
        state = await ctl.call("state")
        if predicate(state):
            return state
        await asyncio.sleep(0.025)
    raise AssertionError(f"the fake TWS's state never got there: {state}")


async def test_separate_process_faults_by_script_and_control_socket_on_the_test_clock(tmp_path):
    epoch = datetime(2026, 12, 7, 14, 30, tzinfo=UTC).timestamp()  # a Monday, 09:30 New York
    t0 = int(epoch) - 600
    script = tmp_path / "script.json"
    script.write_text(json.dumps({
        "symbols": [{"symbol": "MSFT", "con_id": 272093, "hours": "always",
                     "history": {"5": bars_from(t0, 10)}}],
        "actions": [{"after": 0, "cmd": "take_client_id", "client_id": 5},
                    {"after": 0, "cmd": "refuse_history", "count": 1}],
    }))  # fmt: skip
    env = {**os.environ, "SCALP_TEST_CLOCK": f"{time.time()},{epoch},1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faketws", "--script", str(script),
        cwd=ROOT, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        ports = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        ctl = ControlClient("127.0.0.1", ports["control_port"])
        await until_state(ctl, lambda state: state["history_refusals"] == 1)  # the actions ran
        refused = ibapi.IB()
        with pytest.raises((TimeoutError, ConnectionError)):
            await refused.connectAsync("127.0.0.1", ports["port"], clientId=5, timeout=1)
        watch = Watch(await connect(ports["port"]))
        assert (await watch.ib.reqCurrentTimeAsync()).timestamp() == pytest.approx(epoch, abs=5)
        contract = (await watch.ib.reqContractDetailsAsync(ibapi.Stock("MSFT", "SMART")))[0]
        assert contract.timeZoneId == "UTC" and ":CLOSED" not in contract.tradingHours
        bars = watch.ib.reqRealTimeBars(contract.contract, 5, "TRADES", False)
        await ctl.call("wait_subscribed", symbol="MSFT")
        assert await history_times(watch.ib, "MSFT") == []  # the scripted refusal
        assert watch.errors[-1][1:] == (162, PACING_VIOLATION)
        # No end time: the bars up to the test clock's now, not the real one.
        assert len(await history_times(watch.ib, "MSFT")) == 10
        state = await ctl.call("connectivity_lost")
        assert state["sent"] == 1 and state["ib_connected"] is False
        assert (await ctl.call("connectivity_restored", data_kept=False))["sent"] == 1
        assert (await ctl.call("farm_broken"))["broken_farms"] == ["usfarm"]
        assert (await ctl.call("farm_ok", mute=["MSFT"]))["broken_farms"] == []
        assert (await ctl.call("competing_session", on=True, symbols=["MSFT"]))["sent"] == 1
        assert (await ctl.call("competing_session", on=False))["competing"] is False
        assert (await ctl.call("mute", symbol="MSFT"))["sent"] == 0  # muted by the 1101
        assert (await ctl.call("trade_bust", symbol="MSFT"))["sent"] == 0
        await watch.news(lambda: 10197 in watch.codes())
        assert watch.codes()[-6:] == [162, 1100, 1101, 2103, 2104, 10197]
        assert (await ctl.call("refuse_history", count=2, code=162))["history_refusals"] == 2
        await ctl.call("release_client_id", client_id=5)
        await ctl.call("take_client_id", client_id=6)
        assert (await ctl.call("state"))["client_ids"] == [5, 1]
        watch.ib.cancelRealTimeBars(bars)
        lost = asyncio.Event()
        watch.ib.disconnectedEvent += lost.set
        assert (await ctl.call("daily_restart", seconds=0.3))["listening"] is False
        await asyncio.wait_for(lost.wait(), WAIT)
        await until_state(ctl, lambda state: state["listening"])
        ib = await connect(ports["port"], client_id=5)  # listening again, 5 released
        ib.disconnect()
        await ctl.call("shutdown")
        await ctl.close()
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
