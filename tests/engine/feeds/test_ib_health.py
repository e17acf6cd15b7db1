"""The IB feed's judgement of an item's bars (engine/feeds/ib/health.py): pure functions."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.core.bars import Bar
from engine.core.instruments import Instrument
from engine.feeds.ib.bars import SymbolState
from engine.feeds.ib.health import ignore_reason, ignored_notice, restart_sentence, stream_of

pytestmark = pytest.mark.insync

NY = ZoneInfo("America/New_York")


def at(text: str, zone=NY) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize(
    ("now", "said"),
    [
        ("2026-12-07 23:39:59", None),  # more than 5 minutes before
        ("2026-12-07 23:40:00", "back at about 23:48"),
        ("2026-12-07 23:47:59", "back at about 23:48"),
        ("2026-12-07 23:48:00", "back any moment"),
        ("2026-12-08 00:00:00", "back any moment"),  # past midnight: yesterday's restart
        ("2026-12-08 00:00:01", None),  # more than 15 minutes after
        ("2026-12-07 12:00:00", None),
    ],
)
def test_the_daily_restart_window(now, said):
    sentence = restart_sentence("23:45", "America/New_York", at(now))
    if said is None:
        assert sentence is None
    else:
        assert sentence == (
            f"TWS / IB Gateway daily restart (23:45 America/New_York); {said}. "
            "Waiting, then reconnecting and filling the gap from history."
        )


def test_a_restart_just_after_midnight_counts_from_the_evening_before():
    assert restart_sentence("00:02", "Europe/Zurich", at("2026-12-07 23:58:00", ZoneInfo(
        "Europe/Zurich"))) is not None  # fmt: skip


@pytest.mark.parametrize(
    ("time", "zone"),
    [("", "UTC"), ("24:00", "UTC"), ("²3:45", "UTC"), ("23:45", "Mars/Olympus"),
     ("23:45", "../etc"), ("x" * 5000, "UTC"), ("23:45", "\x00")],
)  # fmt: skip
def test_junk_restart_settings_never_claim_a_restart(time, zone):
    assert restart_sentence(time, zone, at("2026-12-07 23:45:00")) is None


def state() -> SymbolState:
    s = SymbolState("AAPL", Instrument("AAPL"))
    s.last_5s = 1000
    s.live_times.extend([990, 995, 1000])
    s.last_history = 985
    return s


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (1005, None),  # the next one
        (1100, None),  # after a gap: taken (the gap is filled first)
        (1000, "twice"),
        (995, "twice"),
        (998, "out of order"),
        (985, None),  # also taken from history: skipped quietly
        (1000 + 61 + 1000, "future"),
    ],
)
def test_which_realtime_bars_are_ignored(start, why):
    bar = Bar("AAPL", start, 5, 1, 1, 1, 1, 1)
    assert ignore_reason(state(), bar, now=1000 + 1000) == why


def test_a_bar_an_hour_old_is_ignored_and_counted():
    s = SymbolState("AAPL", Instrument("AAPL"))
    assert ignore_reason(s, Bar("AAPL", 1000, 5, 1, 1, 1, 1, 1), now=1005 + 3601) == "past"
    assert ignore_reason(s, Bar("AAPL", 1000, 5, 1, 1, 1, 1, 1), now=1005 + 3599) is None
    # older than the bars taken too: still "past", so the notice counts it
    assert ignore_reason(state(), Bar("AAPL", 900, 5, 1, 1, 1, 1, 1), now=1000 + 7200) == "past"


def test_the_ignored_count_is_told_when_it_grows_at_most_every_five_seconds():
    s = state()
    s.ignored["twice"] += 1
    first = ignored_notice(s, now=100.0)
    assert first is not None and first.message == (
        "AAPL: ignored 1 bar from IB so far (1 that arrived twice); no bar is taken twice."
    )
    assert ignored_notice(s, now=101.0) is None  # nothing new
    s.ignored["future"] += 1
    assert ignored_notice(s, now=102.0) is None  # too soon
    later = ignored_notice(s, now=105.0)
    assert later is not None and later.message == (
        "AAPL: ignored 2 bars from IB so far (1 that arrived twice, 1 starting more than 60 s "
        "in the future); no bar is taken twice."
    )


def test_stream_states():
    s = state()
    assert stream_of(s, 10.0, link_down=False, stale_after=15) is None  # not subscribed yet
    s.dropped, s.refused_reason = True, "No market data subscription."
    assert stream_of(s, 10.0, link_down=False, stale_after=15) == (
        "refused", "No market data subscription.")  # fmt: skip
