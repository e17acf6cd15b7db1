"""NYSE regular-session hours (XNYS via exchange_calendars, imported lazily); other
exchanges' calendars for engine/feeds/hours.py."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

EXCHANGE_TZ = ZoneInfo("America/New_York")


def preload() -> None:
    """Import exchange_calendars (and pandas, ~0.5 s) now; safe to call from a thread."""
    import exchange_calendars  # noqa: F401


@lru_cache(maxsize=4)
def _calendar(year: int | None = None) -> Any:
    # Importing exchange_calendars pulls in pandas (~0.5 s): only on first use.
    import exchange_calendars as xcals

    if year is None:
        return xcals.get_calendar("XNYS")
    return xcals.get_calendar("XNYS", start=f"{year - 1}-01-01", end=f"{year + 1}-12-31")


@lru_cache(maxsize=32)
def calendar(code: str) -> Any:
    """The exchange_calendars calendar ``code`` (``XNYS``, ``CMES``, ``XETR``...) over its
    default span (about 20 years back to a year ahead). Call inside :func:`quiet`."""
    import exchange_calendars as xcals

    return xcals.get_calendar(code)


def _calendar_for(now_utc: datetime) -> tuple[Any, Any]:
    import pandas as pd

    minute = pd.Timestamp(_as_utc(now_utc)).floor("min")
    cal = _calendar()
    # The default calendar spans roughly 20 years back to 1 year ahead of today.
    day = minute.tz_localize(None).normalize()
    if not cal.first_session < day < cal.last_session - pd.Timedelta(days=10):
        cal = _calendar(minute.year)
    return cal, minute


@contextmanager
def quiet() -> Iterator[None]:
    """Hide pandas 3 deprecation noise raised inside exchange_calendars. ``catch_warnings``
    is process-global: two threads inside it at once can at worst leave DeprecationWarnings
    ignored (the demo feed builds its calendars in one worker thread)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


_quiet = quiet


def _as_utc(now_utc: datetime) -> datetime:
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc.astimezone(UTC)


def is_open(now_utc: datetime) -> bool:
    """True during an NYSE regular session (09:30–16:00 New York, early closes honoured)."""
    with _quiet():
        cal, minute = _calendar_for(now_utc)
        return bool(cal.is_open_on_minute(minute))


def next_open(now_utc: datetime) -> datetime:
    """The next regular-session open strictly after ``now_utc``, as aware UTC."""
    with _quiet():
        cal, minute = _calendar_for(now_utc)
        return cal.next_open(minute).to_pydatetime().astimezone(UTC)


def format_exchange_time(when: datetime) -> str:
    """``Mon 24 Nov 09:30 ET`` — how a user reads an exchange time."""
    local = when.astimezone(EXCHANGE_TZ)
    return local.strftime("%a %d %b %H:%M ET")


def closed_message(now_utc: datetime) -> str | None:
    """A sentence for the UI when NYSE is closed, ``None`` while it is open."""
    if is_open(now_utc):
        return None
    opens = next_open(now_utc)
    wait = opens - _as_utc(now_utc)
    hint = ""
    if wait < timedelta(days=1):
        hours, rest = divmod(int(wait.total_seconds()) // 60, 60)
        hint = f" (in {hours} h {rest:02d} min)" if hours else f" (in {rest} min)"
    return f"NYSE is closed; IB sends no realtime bars until {format_exchange_time(opens)}{hint}."
