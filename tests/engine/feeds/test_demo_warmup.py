"""The demo feed's warm-up: deterministic, whole up to a cap shared by the symbols, and a
notice when a long-timeframe rule asks for more."""

from __future__ import annotations

import pytest

from engine.core.bars import Bar
from engine.feeds.base import BarEvent, FeedEvent, StatusEvent
from engine.feeds.demo import DEMO_WARMUP_BARS, DemoFeed

pytestmark = pytest.mark.asyncio

NOW = 1_765_895_403  # 2025-12-16 14:30:03 UTC
SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN"]


async def run(symbols: list[str], *, bar_seconds: int, warmup_bars: int) -> list[FeedEvent]:
    feed = DemoFeed(speed=0, max_bars=0, clock=lambda: NOW)
    return [e async for e in feed.events(symbols, bar_seconds=bar_seconds,
                                         warmup_bars=warmup_bars)]  # fmt: skip


def warm_bars(events: list[FeedEvent], symbol: str) -> list[Bar]:
    return [e.bar for e in events if isinstance(e, BarEvent) and e.bar.symbol == symbol]


async def test_a_long_warm_up_is_capped_with_a_notice():
    events = await run(SYMBOLS, bar_seconds=5, warmup_bars=144_721)  # MA200@1h on 5 s bars
    per_symbol = DEMO_WARMUP_BARS // 5
    for symbol in SYMBOLS:
        bars = warm_bars(events, symbol)
        assert len(bars) == per_symbol
        assert [b.time for b in bars] == list(range(NOW - 3 - per_symbol * 5, NOW - 3, 5))
    assert all(e.warmup for e in events if isinstance(e, BarEvent))
    statuses = [(e.state, e.message) for e in events if isinstance(e, StatusEvent)]
    assert statuses[1:] == [
        ("warming_up", "Demo market: 20000 history bars per symbol."),
        ("running", "Demo market running: 5 symbols, 5 s bars, as fast as possible."),
        ("notice", "Demo market: warm-up capped at 20,000 bars per symbol (27.8 hours; the "
                   "rules need 144,721) so the demo starts quickly. Longer-timeframe "
                   "indicators fill from live bars."),
    ]  # fmt: skip
    # The same bars for the same symbol and first bar time, whatever the other symbols.
    alone = await run(["NVDA"], bar_seconds=5, warmup_bars=per_symbol)
    assert warm_bars(alone, "NVDA") == warm_bars(events, "NVDA")


async def test_a_warm_up_within_the_cap_is_whole_and_quiet():
    events = await run(SYMBOLS, bar_seconds=60, warmup_bars=12_061)  # MA200@1h on 1 min bars
    assert [len(warm_bars(events, s)) for s in SYMBOLS] == [12_061] * 5
    assert warm_bars(events, "AAPL")[-1].time == NOW - NOW % 60 - 60
    assert not [e for e in events if isinstance(e, StatusEvent) and e.state == "notice"]
