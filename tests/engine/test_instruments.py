"""Watchlist items (DESIGN §7.1): engine.core.instruments.parse_item, the one parser of every
entry point, and the price filter every page shows prices with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.instruments import (
    MAX_ITEM_LENGTH,
    ContractInfo,
    Instrument,
    ItemError,
    parse_item,
)
from signals.templatetags.prices import price_text


@pytest.mark.parametrize(
    ("raw", "instrument", "text"),
    [
        ("aapl", Instrument("AAPL", "STK", "SMART", "USD"), "AAPL"),
        (" brk.b ", Instrument("BRK B", "STK", "SMART", "USD"), "BRK B"),
        ("AAPL:STK:SMART:USD", Instrument("AAPL", "STK", "SMART", "USD"), "AAPL"),
        ("ES:FUT:CME", Instrument("ES", "FUT", "CME", ""), "ES:FUT:CME"),
        ("mnq:fut:cme:usd", Instrument("MNQ", "FUT", "CME", "USD"), "MNQ:FUT:CME:USD"),
        ("EURUSD:CASH", Instrument("EUR", "CASH", "IDEALPRO", "USD"), "EURUSD:CASH"),
        ("eur.usd:cash:idealpro", Instrument("EUR", "CASH", "IDEALPRO", "USD"), "EURUSD:CASH"),
        ("EUR:CASH:IDEALPRO:USD", Instrument("EUR", "CASH", "IDEALPRO", "USD"), "EURUSD:CASH"),
        ("SAP:STK:IBIS:EUR", Instrument("SAP", "STK", "IBIS", "EUR"), "SAP:STK:IBIS:EUR"),
        ("SAP:STK:IBIS", Instrument("SAP", "STK", "IBIS", ""), "SAP:STK:IBIS"),
        ("SPX:IND:CBOE", Instrument("SPX", "IND", "CBOE", ""), "SPX:IND:CBOE"),
        ("BTC:CRYPTO:PAXOS", Instrument("BTC", "CRYPTO", "PAXOS", "USD"), "BTC:CRYPTO"),
        ("N225:IND:OSE.JPN", Instrument("N225", "IND", "OSE.JPN", ""), "N225:IND:OSE.JPN"),
    ],
)
def test_items_read_with_the_defaults_of_design_7_1(raw, instrument, text):
    assert parse_item(raw) == instrument
    assert instrument.text == text
    assert parse_item(text) == instrument  # the text form reads back as the same item


def test_data_type_and_volume_per_type():
    kinds = {
        text: (parse_item(text).what_to_show, parse_item(text).has_volume)
        for text in ("AAPL", "ES:FUT:CME", "EURUSD:CASH", "SPX:IND:CBOE", "BTC:CRYPTO")
    }
    assert kinds == {
        "AAPL": ("TRADES", True),
        "ES:FUT:CME": ("TRADES", True),
        "EURUSD:CASH": ("MIDPOINT", False),
        "SPX:IND:CBOE": ("TRADES", False),
        "BTC:CRYPTO": ("AGGTRADES", True),
    }


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ("", "A watchlist item can't be empty."),
        (None, "A watchlist item can't be empty."),
        (17, "A watchlist item is text, such as AAPL, ES:FUT:CME or EURUSD:CASH."),
        ("AAPL:OPT", "“AAPL:OPT”: “OPT” is not an instrument type; use STK, FUT, CASH, IND or "
         "CRYPTO."),
        ("ES:FUT", "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME."),
        ("SPX:IND", "“SPX:IND”: an index needs its exchange, such as SPX:IND:CBOE."),
        ("EUR:CASH", "“EUR:CASH”: an FX item names its pair, such as EURUSD:CASH or USDJPY:CASH "
         "(base and quote currency)."),
        ("EURUSD:CASH:IDEALPRO:JPY", "“EURUSD:CASH:IDEALPRO:JPY”: the pair EURUSD is quoted in "
         "USD, not JPY."),
        ("USDUSD:CASH", "“USDUSD:CASH”: a pair needs two different currencies."),
        ("AAPL:STK:SMART:USX", "“AAPL:STK:SMART:USX”: “USX” is not a currency IB trades; use a "
         "three-letter code such as USD, EUR, GBP or JPY."),
        ("AAPL:STK:SM@RT", "“AAPL:STK:SM@RT”: “SM@RT” is not an exchange code; use IB's name, "
         "such as SMART, IBIS, CME, IDEALPRO or CBOE."),
        ("ES:FUT::USD", "“ES:FUT::USD” has an empty part between colons."),
        (":STK", "“:STK” has no symbol before the first ':'."),
        ("A:STK:B:USD:X", "“A:STK:B:USD:X” has 5 parts; an item is SYMBOL or "
         "SYMBOL:TYPE[:EXCHANGE[:CURRENCY]], such as ES:FUT:CME or SAP:STK:IBIS:EUR."),
        ("AAPL MSFT", "“AAPL MSFT” looks like 2 symbols: separate items with commas (a class "
         "share is written BRK B or BRK.B)."),
        ("²", "“²” is not a valid symbol: use letters, digits, '.' or a space."),
        ("ES\x00:FUT:CME", "“ES\\x00:FUT:CME”: “ES\\x00” is not a valid symbol: use letters, "
         "digits, '.' or a space."),
        ("ABCDEFGHIJKLM:FUT:CME", "“ABCDEFGHIJKLM:FUT:CME”: “ABCDEFGHIJKLM” is too long: a "
         "symbol has 1–12 characters."),
        ("A" * 5000, f"“{'A' * 16}… (5000 characters)” is too long: an item has at most "
         f"{MAX_ITEM_LENGTH} characters."),
    ],
)  # fmt: skip
def test_a_bad_item_gets_one_sentence_naming_it(raw, sentence):
    with pytest.raises(ItemError) as err:
        parse_item(raw)
    assert str(err.value) == sentence


@given(st.text(max_size=60))
def test_any_text_is_an_item_or_a_sentence_never_a_crash(raw):
    try:
        instrument = parse_item(raw)
    except ItemError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert parse_item(instrument.text) == instrument
        assert len(instrument.text) <= MAX_ITEM_LENGTH


def test_contract_object_of_events():
    contract = ContractInfo("ESZ6", "FUT", "CME", "USD", "0.25")
    assert contract.to_json() == {
        "local_symbol": "ESZ6", "sec_type": "FUT", "exchange": "CME", "currency": "USD",
        "min_tick": 0.25,
    }  # fmt: skip
    assert contract.decimals == 2
    assert ContractInfo("EUR.USD", "CASH", "IDEALPRO", "USD", "0.00005").decimals == 5
    assert ContractInfo("X", "STK", "SMART", "USD", "").to_json()["min_tick"] is None
    assert ContractInfo("X", "STK", "SMART", "USD", "1").to_json()["min_tick"] == 1


@pytest.mark.parametrize(
    ("value", "contract", "shown"),
    [
        (6000.5, {"min_tick": 0.25}, "6000.50"),
        (1.08, {"min_tick": 0.00005}, "1.08000"),
        (1.08005, {"min_tick": 0.00005}, "1.08005"),
        (0.00001234, {"min_tick": 1e-08}, "0.00001234"),
        (238.73000000000002, None, "238.73"),
        (238.7, {"min_tick": 0.01}, "238.70"),
        (5000.0, {"min_tick": 1}, "5000"),
        (1.2345, {"min_tick": 0.01}, "1.2345"),  # more digits than the tick: all shown
        (None, None, "–"),
        (float("nan"), None, "nan"),
        (1e300, None, "1e+300"),
    ],
)
def test_prices_show_at_the_instruments_precision_without_float_noise(value, contract, shown):
    assert price_text(value, contract) == shown


def test_the_rule_preview_runs_a_future_and_a_pair_on_their_own_tick_grids():
    from decimal import Decimal

    from rules.preview import demo_bars

    es = list(demo_bars("ES:FUT:CME", 200, 5))
    assert all(Decimal(repr(b.close)) % Decimal("0.25") == 0 for b in es)
    assert 4000 < es[-1].close < 8000
    fx = list(demo_bars("EURUSD:CASH", 200, 5))
    assert all(Decimal(repr(b.close)) % Decimal("0.00005") == 0 for b in fx)
    assert 0.8 < fx[-1].close < 1.4 and all(b.volume == 0 for b in fx)
