"""The csv feed's symbols are watchlist items (DESIGN §7.1): a ``symbol`` column may hold
``ES:FUT:CME`` or ``eur.usd:cash``; bars carry the canonical item text, and a bad item
stops the run with the parser's sentence and the line it came from."""

from __future__ import annotations

import pytest

from engine.feeds.base import BarEvent, FeedError
from engine.feeds.csvfile import CsvFeed, watchlist_symbol

pytestmark = pytest.mark.django_db


def test_a_file_symbol_is_read_as_an_item():
    assert watchlist_symbol("es:fut:cme") == "ES:FUT:CME"
    assert watchlist_symbol("EUR.USD:CASH") == "EURUSD:CASH"
    assert watchlist_symbol("brk.b") == "BRK B"
    with pytest.raises(
        ValueError, match=r"^“ES:FUT”: a future needs its exchange, such as ES:FUT:CME$"
    ):
        watchlist_symbol("ES:FUT")


async def test_bars_carry_the_item_text(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "time,symbol,open,high,low,close,volume\n"
        "1765895400,es:fut:cme,6000.25,6000.5,6000,6000.25,120\n"
        "1765895400,EUR.USD:CASH,1.08005,1.0801,1.08,1.08005,0\n"
        "1765895400,SAP:STK:IBIS:EUR,240.1,240.2,240,240.15,300\n"
        "1765895405,es:fut:cme,6000.25,6000.75,6000.25,6000.5,80\n"
    )
    feed = CsvFeed(path, speed=0)
    bars = [
        e.bar
        async for e in feed.events([], bar_seconds=5, warmup_bars=0)
        if isinstance(e, BarEvent)
    ]
    assert [b.symbol for b in bars] == [
        "ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "ES:FUT:CME"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("cell", "sentence"),
    [
        ("ES:FUT", "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME"),
        ("EUR:CASH", "“EUR:CASH”: an FX item names its pair"),
        ("ES:FOO:CME", "“ES:FOO:CME”: “FOO” is not an instrument type"),
        ("SAP:STK:IBIS:EUX", "“SAP:STK:IBIS:EUX”: “EUX” is not a currency IB trades"),
    ],
)
async def test_a_bad_item_in_the_file_stops_the_run_with_its_sentence(tmp_path, cell, sentence):
    path = tmp_path / "bad.csv"
    path.write_text(
        "time,symbol,open,high,low,close,volume\n"
        "1765895400,AAPL,1,1,1,1,10\n"
        "1765895405,AAPL,1,1,1,1,10\n"
        f"1765895410,{cell},1,1,1,1,10\n"
    )
    feed = CsvFeed(path, speed=0)
    with pytest.raises(FeedError) as caught:
        _ = [e async for e in feed.events([], bar_seconds=5, warmup_bars=0)]
    assert sentence in str(caught.value)
    assert "line 4" in str(caught.value)
    assert caught.value.permanent
