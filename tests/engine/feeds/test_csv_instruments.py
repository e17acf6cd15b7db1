"""The csv feed announces each file symbol's contract (no tick size: a file names none)."""

from __future__ import annotations

import pytest

from engine.core.instruments import ContractInfo
from engine.feeds.base import BarEvent, InstrumentEvent
from engine.feeds.csvfile import CsvFeed, file_contract


def test_file_contract_per_type():
    assert file_contract("AAPL") == ContractInfo("AAPL", "STK", "SMART", "USD", "")
    assert file_contract("ES:FUT:CME") == ContractInfo("ES", "FUT", "CME", "", "")
    assert file_contract("EURUSD:CASH") == ContractInfo("EUR.USD", "CASH", "IDEALPRO", "USD", "")
    assert file_contract("SAP:STK:IBIS:EUR") == ContractInfo("SAP", "STK", "IBIS", "EUR", "")
    assert file_contract("BTC:CRYPTO") == ContractInfo("BTC.USD", "CRYPTO", "PAXOS", "USD", "")
    assert file_contract("NOT:A:TYPE") is None


@pytest.mark.asyncio
async def test_each_symbol_is_announced_once_before_its_first_bar(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(
        "time,symbol,open,high,low,close,volume\n"
        "1765895400,AAPL,1,1,1,1,10\n"
        "1765895400,MSFT,2,2,2,2,10\n"
        "1765895405,AAPL,1,1,1,1,10\n"
        "1765895405,MSFT,2,2,2,2,10\n"
    )
    feed = CsvFeed(path, speed=0)
    events = [e async for e in feed.events([], bar_seconds=5, warmup_bars=0)]
    kinds = [
        (type(e).__name__, e.symbol if isinstance(e, InstrumentEvent) else e.bar.symbol)
        for e in events
        if isinstance(e, InstrumentEvent | BarEvent)
    ]
    assert kinds == [
        ("InstrumentEvent", "AAPL"),
        ("BarEvent", "AAPL"),
        ("InstrumentEvent", "MSFT"),
        ("BarEvent", "MSFT"),
        ("BarEvent", "AAPL"),
        ("BarEvent", "MSFT"),
    ]
    contracts = [e.contract for e in events if isinstance(e, InstrumentEvent)]
    assert [c.min_tick for c in contracts] == ["", ""]
    assert contracts[0].to_json()["min_tick"] is None
