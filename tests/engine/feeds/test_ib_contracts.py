"""Which contract an item streams (engine/feeds/ib/contracts.py) and the library's contract
type, without a gateway: the front month by the exchange's date, the sentences for no front
month, several candidates and an unknown item, IB's min tick as an exact decimal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.core.instruments import ContractInfo, parse_item
from engine.feeds.ib.contracts import (
    ContractChoiceError,
    ambiguous_sentence,
    choose_contract,
    front_month,
    last_trade_day,
    unknown_sentence,
)
from engine.feeds.ib.library import IBContract, tick_text

pytestmark = pytest.mark.insync


def month(local: str, last: str, *, trading_class: str = "ES", zone: str = "US/Central"):
    return IBContract(
        symbol="ES:FUT:CME", con_id=hash(local) % 10**6, ib_symbol="ES", exchange="CME",
        currency="USD", local_symbol=local, trading_class=trading_class, sec_type="FUT",
        last_trade_date=last, multiplier="50", min_tick="0.25", time_zone_id=zone,
    )  # fmt: skip


MONTHS = [month("ESH7", "20270319"), month("ESZ6", "20261218"), month("ESM7", "20270618")]


@pytest.mark.parametrize(
    ("now", "roll_days", "expected"),
    [
        (datetime(2026, 12, 1, 15, tzinfo=UTC), 5, "ESZ6"),
        (datetime(2026, 12, 12, 23, tzinfo=UTC), 5, "ESZ6"),  # the 12th in Chicago: 6 days
        (datetime(2026, 12, 13, 5, 59, tzinfo=UTC), 5, "ESZ6"),  # still the 12th in Chicago
        (datetime(2026, 12, 13, 6, 0, tzinfo=UTC), 5, "ESH7"),  # the 13th: 5 days, rolled
        (datetime(2026, 12, 1, 15, tzinfo=UTC), 16, "ESZ6"),  # 17 days away: more than 16
        (datetime(2026, 12, 1, 15, tzinfo=UTC), 17, "ESH7"),  # not more than 17
        (datetime(2026, 12, 1, 15, tzinfo=UTC), 0, "ESZ6"),
        (datetime(2026, 12, 17, 15, tzinfo=UTC), 0, "ESZ6"),  # the day before: 1 > 0
        (datetime(2026, 12, 18, 15, tzinfo=UTC), 0, "ESH7"),  # its last trade day
        (datetime(2027, 6, 14, 15, tzinfo=UTC), 5, None),
    ],
)
def test_front_month_by_the_exchange_date(now, roll_days, expected):
    chosen = front_month(MONTHS, now, roll_days)
    assert (chosen.local_symbol if chosen else None) == expected


def test_front_month_prefers_the_root_trading_class_on_the_same_day():
    weekly = month("EW4Z6", "20261218", trading_class="EW4")
    chosen = front_month([weekly, *MONTHS], datetime(2026, 12, 1, tzinfo=UTC), 5)
    assert chosen is not None and chosen.local_symbol == "ESZ6"


def test_last_trade_day_reads_dates_and_bare_months():
    assert last_trade_day(month("X", "20261218")).isoformat() == "2026-12-18"
    assert last_trade_day(month("X", "202612")).isoformat() == "2026-12-01"
    assert last_trade_day(month("X", "")) is None
    assert last_trade_day(month("X", "2026-1")) is None


def test_no_front_month_is_a_sentence_naming_the_item():
    with pytest.raises(ContractChoiceError) as raised:
        choose_contract(
            parse_item("ES:FUT:CME"), MONTHS[1:2], now_utc=datetime(2026, 12, 15, tzinfo=UTC)
        )
    assert str(raised.value) == (
        "ES:FUT:CME: no front month: IB lists no ES future on CME whose last trade date is more "
        "than 5 days after today (2026-12-14) (the latest IB lists, ESZ6, trades until "
        "2026-12-18); shorten the roll window or pick another contract."
    )
    with pytest.raises(ContractChoiceError, match=r"more than 1 day after"):
        choose_contract(parse_item("ES:FUT:CME"), MONTHS[1:2],
                        now_utc=datetime(2026, 12, 17, 15, tzinfo=UTC), roll_days=1)  # fmt: skip


def stock(currency: str, *, exchange: str = "IBIS", primary: str = "IBIS", con_id: int = 1):
    return IBContract(symbol="x", con_id=con_id, ib_symbol="SAP", exchange=exchange,
                      currency=currency, primary_exchange=primary, local_symbol="SAP")  # fmt: skip


def test_several_candidates_are_listed_with_what_to_add():
    sap = parse_item("SAP:STK:IBIS")
    with pytest.raises(ContractChoiceError) as raised:
        choose_contract(sap, [stock("EUR"), stock("USD", con_id=2)])
    assert str(raised.value) == (
        "SAP:STK:IBIS: IB found 2 contracts: SAP (IBIS, EUR), SAP (IBIS, USD); add the "
        "currency, e.g. SAP:STK:IBIS:EUR."
    )
    smart = parse_item("SAP:STK:SMART:EUR")
    listings = [stock("EUR", exchange="SMART"), stock("EUR", exchange="SMART", primary="FWB")]
    assert ambiguous_sentence(smart, listings) == (
        "SAP:STK:SMART:EUR: IB found 2 contracts: SAP (IBIS, EUR), SAP (FWB, EUR); name the "
        "exchange, e.g. SAP:STK:IBIS:EUR."
    )
    same = [stock("EUR"), stock("EUR", con_id=2)]
    assert ambiguous_sentence(parse_item("SAP:STK:IBIS:EUR"), same) == (
        "SAP:STK:IBIS:EUR: IB found 2 contracts: SAP (IBIS, EUR), SAP (IBIS, EUR); an item "
        "can't tell them apart, so it can't be streamed."
    )
    assert choose_contract(parse_item("SAP:STK:IBIS:EUR"), same[:1]) is same[0]


@pytest.mark.parametrize(
    ("item", "sentence"),
    [
        ("ZZZZ", "ZZZZ: IB doesn't know this symbol as a stock on SMART in USD. Check the "
                 "ticker (for example BRK B, not BRK.B)."),
        ("XX:FUT:CME", "XX:FUT:CME: IB doesn't know XX as a future on CME. Check the symbol, "
                       "the type and the exchange."),
        ("SAP:STK:XETRA:EUR", "SAP:STK:XETRA:EUR: IB doesn't know SAP as a stock on XETRA in "
                              "EUR. Check the symbol, the type and the exchange."),
        ("SPX:IND:CME", "SPX:IND:CME: IB doesn't know SPX as an index on CME. Check the "
                        "symbol, the type and the exchange."),
        ("EURSEK:CASH", "EURSEK:CASH: IB doesn't know the FX pair EUR.SEK on IDEALPRO. Check "
                        "the currencies."),
    ],
)  # fmt: skip
def test_an_unknown_item_is_a_sentence_naming_it(item, sentence):
    assert unknown_sentence(parse_item(item)) == sentence
    with pytest.raises(ContractChoiceError, match="doesn't know"):
        choose_contract(parse_item(item), [])


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.25, "0.25"), (0.01, "0.01"), (5e-05, "0.00005"), (1e-08, "0.00000001"),
     (0.0001, "0.0001"), (5.0, "5"), (100.0, "100"), (0.03125, "0.03125"),
     (0.0, ""), (-1.0, ""), (float("nan"), ""), (float("inf"), ""), (None, ""), ("x", "")],
)  # fmt: skip
def test_min_tick_is_an_exact_decimal_string(value, text):
    assert tick_text(value) == text


def test_the_contract_knows_its_data_types_and_event_object():
    fx = IBContract(symbol="EURUSD:CASH", con_id=1, ib_symbol="EUR", exchange="IDEALPRO",
                    currency="USD", local_symbol="EUR.USD", sec_type="CASH",
                    min_tick="0.00005")  # fmt: skip
    assert (fx.what_to_show, fx.realtime_what_to_show, fx.has_volume) == (
        "MIDPOINT", "MIDPOINT", False
    )  # fmt: skip
    assert fx.info == ContractInfo("EUR.USD", "CASH", "IDEALPRO", "USD", "0.00005")
    coin = IBContract(symbol="BTC:CRYPTO", con_id=2, ib_symbol="BTC", exchange="PAXOS",
                      currency="USD", sec_type="CRYPTO")  # fmt: skip
    assert (coin.what_to_show, coin.realtime_what_to_show, coin.has_volume) == (
        "AGGTRADES", "TRADES", True
    )  # fmt: skip
    assert coin.info.local_symbol == "BTC"  # no local symbol from IB: its symbol
    index = IBContract(symbol="SPX:IND:CBOE", con_id=3, ib_symbol="SPX", exchange="CBOE",
                       currency="USD", sec_type="IND")  # fmt: skip
    assert (index.what_to_show, index.has_volume) == ("TRADES", False)
    assert MONTHS[1].what_to_show == "TRADES" and MONTHS[1].has_volume
