"""The backtest's IB history download against the fake TWS: windows IB allows, pacing kept
and a pacing refusal waited out, resumable, an unknown or refused item a sentence while the
others go on, and a stop that keeps what came. No Django."""

from __future__ import annotations

import time

import pytest

from engine.feeds.ib.history import (
    Chunk,
    HistoryDownload,
    Notice,
    Progress,
    history_client_id,
    plan_windows,
)
from engine.feeds.ib.pacing import HistoryPacer
from tests.engine.feeds.support import make_bars
from tests.faketws import FakeTWS

pytestmark = [pytest.mark.insync]

HOUR = 3600
FAST = 40.0  # the pacer's clock runs 40× real time (a gateway that doesn't enforce pacing)


def fast_pacer() -> HistoryPacer:
    began = time.monotonic()
    return HistoryPacer(clock=lambda: began + (time.monotonic() - began) * FAST)


def test_windows_are_aligned_and_cover_the_period():
    assert plan_windows(7200, 7200 + 3 * HOUR, 5) == [(7200, 10800), (10800, 14400), (14400, 18000)]
    assert plan_windows(7300, 10900, 5) == [(7300, 10800), (10800, 10900)]
    assert plan_windows(0, 86400 * 2, 60) == [(0, 86400), (86400, 172800)]
    assert history_client_id(17) == 117


async def collect(download: HistoryDownload, stop_after_chunks: int | None = None):
    chunks, notices = [], []
    gen = download.run()
    try:
        async for item in gen:
            if isinstance(item, Chunk):
                chunks.append(item)
                if stop_after_chunks is not None and len(chunks) >= stop_after_chunks:
                    break
            elif isinstance(item, Notice):
                notices.append(item.sentence)
            else:
                assert isinstance(item, Progress)
    finally:
        await gen.aclose()
    return chunks, notices


@pytest.mark.asyncio
async def test_download_paced_with_a_refusal_waited_out_and_an_unknown_item():
    # The real pacer: after the refusal the same request waits IB's 15 s (so does this test).
    t0 = int(time.time()) // HOUR * HOUR - 2 * HOUR
    rows = make_bars(t0 - 3 * HOUR, 3 * 720, price=190.0)
    gw = FakeTWS()
    gw.enforce_pacing = True
    gw.add_symbol("AAPL", con_id=265598, history={5: rows})
    gw.add_symbol("MSFT", con_id=272093, history={5: rows})
    gw.deny_history("MSFT", 162, "No market data permissions for NASDAQ STK")
    await gw.start()
    try:
        gw.refuse_history(1)  # the first history request: 162 pacing violation
        download = HistoryDownload(
            host="127.0.0.1", port=gw.port, client_id=117, items=["AAPL", "ZZZZ", "MSFT"],
            bar_seconds=5, start=t0 - 3 * HOUR, end=t0, connect_timeout=5,
        )  # fmt: skip
        chunks, notices = await collect(download)
    finally:
        await gw.stop()
    got = sorted((b.time, b.open, b.high, b.low, b.close, b.volume) for c in chunks for b in c.bars)
    assert got == rows
    assert [(c.start, c.end) for c in chunks] == [
        (t0 - HOUR, t0), (t0 - 2 * HOUR, t0 - HOUR), (t0 - 3 * HOUR, t0 - 2 * HOUR)
    ]  # fmt: skip
    assert any("IB asked us to slow down" in n and "waiting 15 s" in n for n in notices)
    assert any(n.startswith("ZZZZ:") and "other symbols go on" in n for n in notices)
    assert any(n.startswith("MSFT: No historical data permission") and "other symbols go on" in n
               for n in notices)  # fmt: skip
    assert download.with_bars == ["AAPL"]
    assert all(r["bar_size"] == "5 secs" and r["duration"] == "3600 S" for r in gw.history_log)
    assert len(gw.history_log) == 3 + 1 + 1  # AAPL's windows, the refused one, MSFT's first
    assert gw.pacing_violations() == []  # the same request again only after IB's 15 s


@pytest.mark.asyncio
async def test_a_stopped_download_keeps_its_chunks_and_resumes_with_the_rest():
    t0 = int(time.time()) // HOUR * HOUR - 2 * HOUR
    rows = make_bars(t0 - 3 * HOUR, 3 * 720, price=50.0)
    gw = FakeTWS()
    gw.add_symbol("MSFT", con_id=272093, history={5: rows})
    await gw.start()
    try:
        args = {
            "host": "127.0.0.1", "port": gw.port, "client_id": 117, "items": ["MSFT"],
            "bar_seconds": 5, "start": t0 - 3 * HOUR, "end": t0, "connect_timeout": 5,
        }  # fmt: skip
        first, _ = await collect(HistoryDownload(**args, pacer=fast_pacer()), stop_after_chunks=1)
        assert len(first) == 1 and len(first[0].bars) == 720
        asked = len(gw.history_log)
        skip = {("MSFT", c.start) for c in first}
        rest, notices = await collect(HistoryDownload(**args, skip=skip, pacer=fast_pacer()))
    finally:
        await gw.stop()
    assert notices == []
    assert len(gw.history_log) == asked + 2  # the stored window was not asked again
    times = sorted(b.time for c in first + rest for b in c.bars)
    assert times == [r[0] for r in rows]
