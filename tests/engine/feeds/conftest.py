"""Fixtures for the IB feed tests: a fake TWS on a random port with two known stocks."""

from __future__ import annotations

import time

import pytest_asyncio

from tests.engine.feeds.support import make_bars, minute_floor
from tests.faketws import FakeTWS


@pytest_asyncio.fixture
async def gateway():
    """A fake TWS knowing AAPL and MSFT, with 5 s history ending at ``gw.t0`` (a minute
    boundary 20 minutes ago) and 1 min history ending at the same point."""
    t0 = minute_floor(time.time()) - 1200
    gw = FakeTWS()
    gw.add_symbol(
        "AAPL",
        con_id=265598,
        primary_exchange="NASDAQ",
        long_name="APPLE INC",
        history={
            5: make_bars(t0 - 500, 100, price=190.0),
            60: make_bars(t0 - 1800, 30, seconds=60, price=189.0),
        },
    )
    gw.add_symbol(
        "MSFT",
        con_id=272093,
        history={
            5: make_bars(t0 - 500, 100, price=410.0),
            60: make_bars(t0 - 1800, 30, seconds=60, price=409.0),
        },
    )
    gw.t0 = t0  # type: ignore[attr-defined]
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()
