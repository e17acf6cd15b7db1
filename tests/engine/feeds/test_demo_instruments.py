"""The demo market's instruments: futures, FX, indices and crypto on their own tick grids,
each announced with its contract and its real market's hours; stocks exactly as before."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.bars import Bar
from engine.core.instruments import ContractInfo, parse_item
from engine.feeds.base import BarEvent, FeedEvent, InstrumentEvent, MarketEvent, StatusEvent
from engine.feeds.demo import (
    CRYPTO,
    FUTURES,
    DemoFeed,
    DemoMarket,
    TickMarket,
    demo_contract,
    demo_market,
    demo_spec,
    front_month,
)

NOW = 1_765_895_403  # 2025-12-16 14:30:03 UTC, a Tuesday
SATURDAY_NOON = int(datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp())


async def run(
    symbols: list[str], *, clock=lambda: NOW, seed: int = 0, warmup_bars: int = 0, live: int = 0
) -> list[FeedEvent]:
    feed = DemoFeed(speed=0, max_bars=live, seed=seed, clock=clock)
    return [e async for e in feed.events(symbols, bar_seconds=5, warmup_bars=warmup_bars)]


def bars_of(market, symbol: str, count: int) -> list[Bar]:
    return [market.bar(symbol, NOW + 5 * i, 5) for i in range(count)]


def prices(bar: Bar) -> list[float]:
    return [bar.open, bar.high, bar.low, bar.close]


def on_grid(price: float, tick: str) -> bool:
    """The price prints as a decimal with no float noise, and that decimal is a whole number
    of ticks."""
    shown = Decimal(repr(price))
    decimals = -Decimal(tick).as_tuple().exponent
    return shown % Decimal(tick) == 0 and -shown.as_tuple().exponent <= max(1, decimals)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        (0, "c25e7d0c91a270951cc77445ae96238b73971efc9f6d45d4f7b6dab5b1c00103"),
        (7, "115bdaaabc39eb18f306808f18307b5d8fe15c02891bc6de6e04e7af640ec4d2"),
    ],
)
async def test_stock_bars_are_those_of_before(seed, expected):
    # Digests of the bars the demo made before items had types (commit f2e03a3).
    events = await run(["AAPL", "MSFT", "BRK B"], seed=seed, warmup_bars=1800, live=200)
    digest = hashlib.sha256()
    for e in events:
        if isinstance(e, BarEvent):
            digest.update(repr((e.bar, e.warmup)).encode())
    assert digest.hexdigest() == expected
    assert isinstance(demo_market("AAPL"), DemoMarket)


def test_es_prices_are_exact_quarters_around_6000():
    bars = bars_of(demo_market("ES:FUT:CME"), "ES:FUT:CME", 10_000)
    for bar in bars:
        for price in prices(bar):
            assert (Fraction(price) * 4).denominator == 1, price
            assert on_grid(price, "0.25"), price
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume >= 0
    closes = [b.close for b in bars]
    assert min(closes) >= 5700 and max(closes) <= 6300
    assert len(set(closes)) > 100  # it moves
    assert sum(b.volume for b in bars) > 0


def test_eurusd_prices_are_on_the_half_pip_grid_with_no_volume():
    bars = bars_of(demo_market("EURUSD:CASH"), "EURUSD:CASH", 10_000)
    for bar in bars:
        for price in prices(bar):
            assert on_grid(price, "0.00005"), price
            # The float is the one nearest its ticks' decimal value.
            ticks = Fraction(repr(price)) / Fraction("0.00005")
            assert ticks.denominator == 1 and price == float(ticks * Fraction("0.00005"))
        assert bar.volume == 0.0
    closes = [b.close for b in bars]
    assert min(closes) >= 1.02 and max(closes) <= 1.14


def test_nq_index_and_coin_levels_and_volume():
    nq = bars_of(demo_market("NQ:FUT:CME"), "NQ:FUT:CME", 2000)
    assert all(on_grid(p, "0.25") for b in nq for p in prices(b))
    assert 19_900 <= nq[-1].close <= 22_100
    spx = bars_of(demo_market("SPX:IND:CBOE"), "SPX:IND:CBOE", 2000)
    assert all(on_grid(p, "0.01") and b.volume == 0.0 for b in spx for p in prices(b))
    btc = bars_of(demo_market("BTC:CRYPTO"), "BTC:CRYPTO", 2000)
    assert all(on_grid(p, "0.25") for b in btc for p in prices(b))
    assert any(b.volume > 0 for b in btc)
    jpy = bars_of(demo_market("USDJPY:CASH"), "USDJPY:CASH", 2000)
    assert all(on_grid(p, "0.005") for b in jpy for p in prices(b))
    zn = bars_of(demo_market("ZN:FUT:CBOT"), "ZN:FUT:CBOT", 2000)  # 1/64 ticks
    assert all((Fraction(p) * 64).denominator == 1 for b in zn for p in prices(b))


SPECS = sorted({*FUTURES.values(), *CRYPTO.values()}, key=lambda s: (s.tick, s.level))


@settings(max_examples=40, deadline=None)
@given(spec=st.sampled_from(SPECS), seed=st.integers(0, 2**31), count=st.integers(1, 300))
def test_every_tick_market_stays_on_its_grid(spec, seed, count):
    market = TickMarket("X:FUT:CME", spec, seed=seed)
    for bar in bars_of(market, "X:FUT:CME", count):
        for price in prices(bar):
            assert price > 0
            assert (Fraction(repr(price)) / Fraction(spec.tick)).denominator == 1
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high


def test_the_same_seed_and_symbol_give_the_same_path():
    a = bars_of(demo_market("ES:FUT:CME", seed=3), "ES:FUT:CME", 500)
    b = bars_of(demo_market("ES:FUT:CME", seed=3), "ES:FUT:CME", 500)
    c = bars_of(demo_market("ES:FUT:CME", seed=4), "ES:FUT:CME", 500)
    assert a == b != c


def test_front_month_rolls_five_days_before_expiry():
    # December 2026 expires on Friday the 18th.
    assert front_month("ES", date(2026, 12, 5)) == "ESZ6"
    assert front_month("ES", date(2026, 12, 12)) == "ESZ6"  # 6 days left
    assert front_month("ES", date(2026, 12, 13)) == "ESH7"  # 5 days left: rolled
    assert front_month("ES", date(2026, 12, 13), roll_days=0) == "ESZ6"
    assert front_month("NQ", date(2027, 1, 4)) == "NQH7"
    assert front_month("CL", date(2026, 12, 5)) == "CLZ6"  # monthly
    assert front_month("CL", date(2026, 12, 14)) == "CLF7"


def test_contracts_per_type():
    today = date(2026, 12, 5)
    assert demo_contract(parse_item("ES:FUT:CME"), today) == ContractInfo(
        "ESZ6", "FUT", "CME", "USD", "0.25"
    )
    assert demo_contract(parse_item("EURUSD:CASH"), today) == ContractInfo(
        "EUR.USD", "CASH", "IDEALPRO", "USD", "0.00005"
    )
    assert demo_contract(parse_item("SAP:STK:IBIS:EUR"), today) == ContractInfo(
        "SAP", "STK", "IBIS", "EUR", "0.01"
    )
    assert demo_contract(parse_item("FDAX:FUT:EUREX"), today).currency == "EUR"
    assert demo_contract(parse_item("BTC:CRYPTO"), today).local_symbol == "BTC.USD"
    assert demo_spec(parse_item("EURUSD:CASH")).tick == "0.00005"
    assert demo_spec(parse_item("NQ:FUT:CME")).level == "21000"


@pytest.mark.asyncio
async def test_each_item_is_announced_with_its_contract_and_hours():
    items = ["ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "BTC:CRYPTO", "AAPL"]
    events = await run(items, clock=lambda: SATURDAY_NOON, warmup_bars=3, live=2)
    contracts = {e.symbol: e.contract for e in events if isinstance(e, InstrumentEvent)}
    assert contracts["ES:FUT:CME"].local_symbol == "ESZ6"
    assert contracts["ES:FUT:CME"].min_tick == "0.25"
    assert contracts["EURUSD:CASH"].min_tick == "0.00005"
    assert contracts["AAPL"] == ContractInfo("AAPL", "STK", "SMART", "USD", "0.01")
    markets = {e.symbol: (e.is_open, e.line) for e in events if isinstance(e, MarketEvent)}
    note = " (the demo runs around the clock)"
    assert markets == {
        "ES:FUT:CME": (False, "closed, opens Sun 17:00 America/Chicago" + note),
        "EURUSD:CASH": (False, "closed, opens Sun 17:00 America/New_York" + note),
        "SAP:STK:IBIS:EUR": (False, "closed, opens Mon 09:00 Europe/Berlin" + note),
        "BTC:CRYPTO": (True, "trading (PAXOS)"),
        "AAPL": (False, "closed, opens Mon 04:00 America/New_York" + note),
    }
    # The contract comes before the item's first bar, its hours (built in a thread during
    # the warm-up) before its first live bar; bars still run around the clock (a demo).
    for symbol in items:

        def first(kind, warmup=None, symbol=symbol):
            return next(
                i
                for i, e in enumerate(events)
                if isinstance(e, kind)
                and (e.bar.symbol if isinstance(e, BarEvent) else e.symbol) == symbol
                and (warmup is None or e.warmup == warmup)
            )

        assert first(InstrumentEvent) < first(BarEvent)
        assert first(MarketEvent) < first(BarEvent, warmup=False)
        assert sum(isinstance(e, InstrumentEvent | MarketEvent) and e.symbol == symbol
                   for e in events) == 2  # fmt: skip
    assert sum(isinstance(e, BarEvent) for e in events) == 5 * (3 + 2)


@pytest.mark.asyncio
async def test_a_market_event_when_the_market_opens():
    # Sunday 16:50 Chicago; each clock reading is a minute later: Globex opens at 17:00.
    start = int(datetime(2026, 12, 6, 22, 50, tzinfo=UTC).timestamp())
    readings = iter(range(start, start + 60 * 1000, 60))
    events = await run(["ES:FUT:CME", "BTC:CRYPTO"], clock=lambda: next(readings), live=40)
    changes = [(e.symbol, e.is_open, e.line) for e in events if isinstance(e, MarketEvent)]
    note = " (the demo runs around the clock)"
    assert changes == [
        ("ES:FUT:CME", False, "closed, opens 17:00 America/Chicago" + note),
        ("BTC:CRYPTO", True, "trading (PAXOS)"),
        ("ES:FUT:CME", True, "trading (CME Globex)"),
    ]


@pytest.mark.asyncio
async def test_an_item_that_cant_be_read_gets_a_notice_and_the_others_run():
    events = await run(["ES:FUT:CME", "FOO:BAR", "ES:FUT"], live=3)
    notices = [e for e in events if isinstance(e, StatusEvent) and e.state == "notice"]
    assert [(n.symbol, n.permanent) for n in notices] == [("FOO:BAR", True), ("ES:FUT", True)]
    assert "“FOO:BAR”" in notices[0].message and "not an instrument type" in notices[0].message
    assert "needs its exchange" in notices[1].message
    assert {e.bar.symbol for e in events if isinstance(e, BarEvent)} == {"ES:FUT:CME"}
    running = [e.message for e in events if isinstance(e, StatusEvent) and e.state == "running"]
    assert running == ["Demo market running: 1 symbols, 5 s bars, as fast as possible."]
