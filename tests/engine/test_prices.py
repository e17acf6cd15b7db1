"""Every price the engine outputs is the bar's decimal value: no float noise (238.73, never
238.73000000000002) in the feed's bars, the stored signals or the events."""

import asyncio
import time
from decimal import Decimal

import pytest

from engine.core.bars import Bar
from engine.core.machine import SymbolMachine
from engine.core.rules import validate_definition
from engine.feeds.demo import DemoMarket
from engine.services import settings_update
from engine.worker.config import Overrides
from engine.worker.engine import Engine
from engine.worker.publish import MemoryPublisher
from signals.models import Signal
from tests.factories import make_watchlist

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "SPY"]


def decimals(price: float) -> int:
    """How many decimals the shortest text of ``price`` has (238.73 → 2)."""
    return max(0, -Decimal(repr(price)).as_tuple().exponent)


def test_demo_market_prices_are_cent_decimals():
    noisy = []
    for symbol in SYMBOLS:
        market = DemoMarket(symbol)
        for i in range(5000):
            bar = market.bar(symbol, 1_765_877_400 + 5 * i, 5)
            noisy += [p for p in (bar.open, bar.high, bar.low, bar.close) if decimals(p) > 2]
    assert noisy == []


@pytest.mark.django_db(transaction=True)
def test_a_demo_run_stores_and_publishes_clean_prices():
    make_watchlist(name="Five", symbols=SYMBOLS, activate=True)
    settings_update(feed="demo")
    publisher = MemoryPublisher()
    engine = Engine(overrides=Overrides(speed=0), publisher=publisher, start=True)

    def count(kind: str) -> int:
        return sum(1 for e in publisher.events if e.get("event") == kind)

    async def run() -> None:
        main = asyncio.create_task(engine.main())
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if count("bar") >= 15_000 and count("signal") >= 50:
                break
            await asyncio.sleep(0.2)
        engine.request_shutdown()
        await main

    asyncio.run(run())
    bars = [e for e in publisher.events if e["event"] == "bar"]
    signals = [e for e in publisher.events if e["event"] == "signal"]
    assert len(bars) >= 15_000 and len(signals) >= 50
    bar_prices = [e[k] for e in bars for k in ("open", "high", "low", "close")]
    assert [p for p in bar_prices if decimals(p) > 2] == []
    assert [e["price"] for e in signals if decimals(e["price"]) > 2] == []
    stored = list(Signal.objects.all())
    # Shutdown may cancel the run between storing a signal and publishing it.
    assert len(stored) >= len(signals)
    assert [s.price for s in stored if decimals(s.price) > 2] == []
    assert [s.to_event()["price"] for s in stored if decimals(s.to_event()["price"]) > 2] == []


def test_a_signal_price_is_the_price_the_core_compared_not_the_float_it_was_given():
    rule = validate_definition(
        {"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": 100}],
         "cooldown_sec": 0}
    )  # fmt: skip
    noisy = 190.05 + 0.02
    assert repr(noisy) == "190.07000000000002"
    signal = SymbolMachine(rule, "AAPL").on_bar(Bar("AAPL", 0, 5, noisy, noisy, noisy, noisy, 1))
    assert signal is not None and repr(signal.price) == "190.07"


@pytest.mark.parametrize(
    "price", [238.73, 1.08005, 1.0800005, 0.00001234, 6000.25, 12345.12345678, 0.00000001]
)
def test_a_signal_price_keeps_every_decimal_up_to_8_and_no_float_noise(price):
    # 1.0800005 and 12345.12345678 were rounded to millionths before issue 10.
    rule = validate_definition(
        {"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
         "cooldown_sec": 0}
    )  # fmt: skip
    signal = SymbolMachine(rule, "X").on_bar(Bar("X", 0, 5, price, price, price, price, 1))
    assert signal is not None and signal.price == price
    assert Decimal(repr(signal.price)) == Decimal(str(price)) and decimals(signal.price) <= 8
