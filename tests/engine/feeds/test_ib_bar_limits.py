"""A realtime bar from TWS with a time out of range is skipped with a sentence, not a crash.

Runs without Django: ``pytest -p no:django tests/engine/feeds``.
"""

from __future__ import annotations

import pytest

from engine.feeds.ib import IBFeed
from tests.engine.feeds.support import FeedRun, make_bars

pytestmark = [pytest.mark.asyncio, pytest.mark.insync]


async def test_a_realtime_bar_out_of_range_is_skipped_with_a_notice(gateway):
    feed = IBFeed(host="127.0.0.1", port=gateway.port, client_id=17, connect_timeout=3)
    run = FeedRun(feed, ["AAPL"], warmup_bars=5)
    await run.wait_status("running")
    await gateway.wait_subscribed("AAPL")
    # Year 2100 and year 9999: datetime can hold them, the engine's bar times can't.
    await gateway.push_bar("AAPL", 4_102_444_800, 191.0, 191.5, 190.5, 191.25, 900)
    await gateway.push_bar("AAPL", 253_402_300_795, 191.0, 191.5, 190.5, 191.25, 900)
    notice = await run.wait_status("notice", symbol="AAPL")
    assert notice.message == (
        "AAPL: skipped a bar from TWS: time '2100-01-01T00:00:00Z' is out of range: "
        "bars must start between 1970-01-01 and 2099-12-31 (UTC)."
    )
    assert not notice.permanent
    good = make_bars(gateway.t0, 1, price=192.0)[0]
    await gateway.push_bar("AAPL", *good)
    bars = await run.wait_bars("AAPL", 1)
    assert [b.time for b in bars] == [gateway.t0]
    assert not run.finished
    await run.close()
