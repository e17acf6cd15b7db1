"""NYSE regular-session hours (exchange_calendars XNYS)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.feeds import markethours

pytestmark = pytest.mark.insync


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_regular_session():
    assert markethours.is_open(utc(2025, 12, 16, 14, 30))  # 09:30 New York
    assert markethours.is_open(utc(2025, 12, 16, 20, 59))
    assert not markethours.is_open(utc(2025, 12, 16, 21, 0))  # 16:00
    assert not markethours.is_open(utc(2025, 12, 16, 14, 29))
    assert markethours.is_open(utc(2025, 7, 15, 13, 30))  # summer time: 09:30 EDT


def test_weekends_holidays_and_early_closes():
    assert not markethours.is_open(utc(2025, 12, 20, 15, 0))  # Saturday
    assert not markethours.is_open(utc(2025, 12, 25, 15, 0))  # Christmas
    assert markethours.is_open(utc(2025, 11, 28, 17, 59))  # day after Thanksgiving: 13:00 close
    assert not markethours.is_open(utc(2025, 11, 28, 18, 0))


def test_next_open():
    assert markethours.next_open(utc(2025, 12, 19, 22, 0)) == utc(2025, 12, 22, 14, 30)
    assert markethours.next_open(utc(2025, 12, 24, 19, 0)) == utc(2025, 12, 26, 14, 30)


def test_closed_message():
    assert markethours.closed_message(utc(2025, 12, 16, 15, 0)) is None
    message = markethours.closed_message(utc(2025, 12, 19, 22, 0))
    assert message == "NYSE is closed; IB sends no realtime bars until Mon 22 Dec 09:30 ET."
    soon = markethours.closed_message(utc(2025, 12, 16, 13, 0))
    assert soon.endswith("until Tue 16 Dec 09:30 ET (in 1 h 30 min).")


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        markethours.is_open(datetime(2025, 12, 16, 15, 0))  # noqa: DTZ001
