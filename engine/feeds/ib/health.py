"""How an IB item's bars are doing, as the feed judges it (no IB library import): a realtime
bar that can't be right, the count of such bars as a sentence, an item's stream state, and
the daily restart of TWS / IB Gateway. ``docs/ib-faults.md`` has the whole picture."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine.core.bars import Bar
from engine.feeds.base import StatusEvent
from engine.feeds.ib.bars import SymbolState
from engine.feeds.ib.errors import COMPETING_SESSION, describe_ib_error

# A realtime bar is ignored (and counted in a notice) when it starts more than this far ahead
# of the clock, or closed more than this long ago: IB sends each bar as it closes.
FUTURE_TOLERANCE = 60
PAST_TOLERANCE = 3600
IGNORED_NOTICE_EVERY = 5.0  # at most one "ignored bars" notice per item this often (s)
IGNORED_LABELS = {
    "twice": "that arrived twice",
    "out of order": "out of order",
    "future": f"starting more than {FUTURE_TOLERANCE} s in the future",
    "past": "more than an hour old",
}

# The daily restart of TWS / IB Gateway: a lost connection this close to the restart time
# is that restart, which takes about RESTART_TAKES.
RESTART_BEFORE = timedelta(minutes=5)
RESTART_AFTER = timedelta(minutes=15)
RESTART_TAKES = timedelta(minutes=3)

STALE_REASON = "No bars from IB while its market is open; renewing the subscription."


def bars_text(count: int) -> str:
    """``1 bar``, ``1,068 bars``."""
    return f"{count:,} bar{'s' if count != 1 else ''}"


def ignore_reason(state: SymbolState, bar: Bar, now: float) -> str | None:
    """Why realtime ``bar`` must not be taken in at clock time ``now``: ``future``,
    ``past``, ``twice``, ``out of order`` (a key of :data:`IGNORED_LABELS`), or None to take
    it. A bar that was also taken from history is no fault (``take`` skips it quietly)."""
    if bar.time > now + FUTURE_TOLERANCE:
        return "future"
    if bar.close_time < now - PAST_TOLERANCE:
        return "past"
    if state.last_5s is None or bar.time > state.last_5s:
        return None
    if bar.time in state.live_times:
        return "twice"
    if state.last_history is not None and bar.time <= state.last_history:
        return None
    return "out of order"


def ignored_notice(state: SymbolState, now: float) -> StatusEvent | None:
    """The count of ``state``'s ignored bars when it grew since the last notice, at most
    every :data:`IGNORED_NOTICE_EVERY` seconds (``now``: monotonic)."""
    total = sum(state.ignored.values())
    if total == state.ignored_told:
        return None
    if state.ignored_told and now - state.ignored_told_at < IGNORED_NOTICE_EVERY:
        return None
    state.ignored_told, state.ignored_told_at = total, now
    parts = ", ".join(f"{n} {IGNORED_LABELS[why]}" for why, n in state.ignored.items())
    return StatusEvent(
        "notice",
        f"{state.symbol}: ignored {bars_text(total)} from IB so far ({parts}); "
        "no bar is taken twice.",
        symbol=state.symbol,
    )


def stream_of(
    state: SymbolState, now: float, *, link_down: bool, stale_after: float
) -> tuple[str, str] | None:
    """(stream, reason) of ``state`` at monotonic ``now`` — ``streaming``, ``stale``,
    ``closed`` or ``refused`` — or None while it is not resolved and subscribed yet."""
    if state.dropped:
        return ("refused", state.refused_reason or "IB refused this item.")
    if state.contract is None or state.realtime is None:
        return None
    if state.competing:
        return ("refused", describe_ib_error(COMPETING_SESSION, "")[0])
    if state.market is not None and not state.market[0]:
        return ("closed", state.market[1])
    if link_down:
        return ("stale", describe_ib_error(1100, "")[0])
    if now - max(state.last_bar_mono, state.flow_from) > stale_after:
        return ("stale", STALE_REASON)
    return ("streaming", "")


def restart_sentence(restart_time: str, restart_zone: str, now: float) -> str | None:
    """The status while TWS / IB Gateway does its daily restart at ``restart_time``
    (``HH:MM`` in ``restart_zone``): None unless epoch ``now`` is within [restart − 5 min,
    restart + 15 min]."""
    text = (restart_time or "").strip()
    try:
        hour, minute = (int(part) for part in text.split(":"))
        zone = ZoneInfo(restart_zone)
        at_zone = datetime.fromtimestamp(now, zone)
        today = at_zone.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except (ValueError, KeyError, OSError):
        return None
    for at in (today - timedelta(days=1), today, today + timedelta(days=1)):
        if at - RESTART_BEFORE <= at_zone <= at + RESTART_AFTER:
            back = at + RESTART_TAKES
            when = f"back at about {back:%H:%M}" if at_zone < back else "back any moment"
            return (
                f"TWS / IB Gateway daily restart ({text} {restart_zone}); {when}. "
                "Waiting, then reconnecting and filling the gap from history."
            )
    return None
