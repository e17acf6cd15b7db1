"""Trading hours per instrument (DESIGN §7.1): IB's contract-details schedule, or an exchange
calendar as the fallback of the demo and csv feeds.

A :class:`TradingHours` holds its sessions as sorted UTC intervals (epoch seconds), so
:meth:`~TradingHours.is_open` and :meth:`~TradingHours.line` are a bisect and, when closed,
one local-time format: cheap enough to call every second for every item.

IB's strings (TWS API ``ContractDetails.tradingHours``/``liquidHours``) come in two forms:
``20261123:0930-20261123:1600;20261124:CLOSED`` (TWS 970 and later: each end has its date,
so a session may cross midnight, ``20261123:1700-20261124:1600``) and the older
``20090507:0700-1830,1830-2330;20090508:CLOSED`` (times on the listed trading day; a range
whose end is earlier than its start opened the evening before: ``20130114:1700-1515``).
"""

from __future__ import annotations

import logging
import math
import re
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.inputs import shown
from engine.core.instruments import Instrument
from engine.feeds import markethours

__all__ = ["MAX_HOURS_LENGTH", "TradingHours", "fallback_hours", "venue_name", "zone_for"]

logger = logging.getLogger(__name__)

# A month of sessions in the newer format is ~1,100 characters; IB sends about a week.
MAX_HOURS_LENGTH = 20_000
ALWAYS_END = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC: "always open" has no end
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Time zone ids IB sends that are not IANA names, or IANA names better shown as a city.
# IB's "EST"/"CST"/"MET" mean the exchange's local time with summer time (IANA's EST is a
# fixed UTC-5, so it can't be taken as it is).
IB_ZONES = {
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "EST5EDT": "America/New_York",
    "US/Eastern": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "CST6CDT": "America/Chicago",
    "US/Central": "America/Chicago",
    "MST": "America/Denver",
    "MST7MDT": "America/Denver",
    "US/Mountain": "America/Denver",
    "PST": "America/Los_Angeles",
    "PST8PDT": "America/Los_Angeles",
    "US/Pacific": "America/Los_Angeles",
    "MET": "Europe/Berlin",
    "CET": "Europe/Berlin",
    "MEZ": "Europe/Berlin",
    "GMT": "Europe/London",
    "GB": "Europe/London",
    "BST": "Europe/London",
    "WET": "Europe/Lisbon",
    "EET": "Europe/Athens",
    "MSK": "Europe/Moscow",
    "JST": "Asia/Tokyo",
    "Japan": "Asia/Tokyo",
    "HKT": "Asia/Hong_Kong",
    "Hongkong": "Asia/Hong_Kong",
    "CTT": "Asia/Shanghai",
    "PRC": "Asia/Shanghai",
    "IST": "Asia/Kolkata",
    "Asia/Calcutta": "Asia/Kolkata",
    "SGT": "Asia/Singapore",
    "Singapore": "Asia/Singapore",
    "KST": "Asia/Seoul",
    "ROK": "Asia/Seoul",
    "AET": "Australia/Sydney",
    "AEST": "Australia/Sydney",
    "Australia/NSW": "Australia/Sydney",
    "Australia/ACT": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "UTC": "UTC",
    "Etc/UTC": "UTC",
    "Universal": "UTC",
    "Zulu": "UTC",
}

# How a trader names the place an instrument trades (IB's exchange code → name).
VENUES = {
    **dict.fromkeys(("CME", "CBOT", "NYMEX", "COMEX", "GLOBEX", "ECBOT", "NYBOT"), "CME Globex"),
    "NYSE": "NYSE",
    "ARCA": "NYSE Arca",
    "AMEX": "NYSE American",
    "NASDAQ": "Nasdaq",
    "ISLAND": "Nasdaq",
    "BATS": "Cboe BZX",
    "IEX": "IEX",
    "CBOE": "CBOE",
    "CFE": "CBOE Futures",
    "IDEALPRO": "IDEALPRO FX",
    "PAXOS": "PAXOS",
    "ZEROHASH": "Zero Hash",
    "IBIS": "Xetra",
    "XETRA": "Xetra",
    "FWB": "Frankfurt",
    "EUREX": "Eurex",
    "LSE": "LSE",
    "LSEETF": "LSE",
    "SBF": "Euronext Paris",
    "AEB": "Euronext Amsterdam",
    "ENEXT.BE": "Euronext Brussels",
    "EBS": "SIX Swiss",
    "BVME": "Borsa Italiana",
    "BM": "BME Madrid",
    "SFB": "Nasdaq Stockholm",
    "TSEJ": "Tokyo",
    "OSE.JPN": "Osaka",
    "SEHK": "HKEX",
    "ASX": "ASX",
    "TSE": "TSX",
    "ICEEU": "ICE Europe",
}

# Exchange codes → exchange_calendars codes for the fallback hours.
CALENDARS = {
    "IBIS": "XETR",
    "XETRA": "XETR",
    "FWB": "XFRA",
    "EUREX": "XEUR",
    "LSE": "XLON",
    "LSEETF": "XLON",
    "SBF": "XPAR",
    "AEB": "XAMS",
    "ENEXT.BE": "XBRU",
    "EBS": "XSWX",
    "BVME": "XMIL",
    "BM": "XMAD",
    "SFB": "XSTO",
    "TSEJ": "XTKS",
    "OSE.JPN": "XTKS",
    "SEHK": "XHKG",
    "ASX": "XASX",
    "TSE": "XTSE",
}
US_EXCHANGES = frozenset({"SMART", "NYSE", "ARCA", "AMEX", "NASDAQ", "ISLAND", "BATS", "IEX"})
GLOBEX = frozenset({"CME", "CBOT", "NYMEX", "COMEX", "GLOBEX", "ECBOT", "NYBOT"})
US_INDEX_EXCHANGES = frozenset({"CBOE", "NASDAQ", "NYSE", "CME", "CBOT", "AMEX"})
# A stock on SMART in another currency: its home market's calendar.
HOME_CALENDARS = {
    "EUR": ("XETR", "Xetra"),
    "GBP": ("XLON", "LSE"),
    "JPY": ("XTKS", "Tokyo"),
    "HKD": ("XHKG", "HKEX"),
    "AUD": ("XASX", "ASX"),
    "CAD": ("XTSE", "TSX"),
    "CHF": ("XSWX", "SIX Swiss"),
}

_DAY_RE = re.compile(r"(\d{8}):")
_RANGE_RE = re.compile(r"(?:(\d{8}):)?(\d{4})-(?:(\d{8}):)?(\d{4})")


def _shown(text: str) -> str:
    return shown(text, keep=32, limit=40)


def _epoch(now_utc: datetime) -> float:
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc.timestamp()


def zone_for(time_zone_id: str, *, venue: str = "") -> tuple[ZoneInfo, str]:
    """The zone of an IB ``timeZoneId`` and the name to show (``US/Central`` →
    ``America/Chicago``, ``MET`` → ``Europe/Berlin``); ValueError with a sentence when the
    id is not a zone (IB's three-letter ids are mapped, other abbreviations refused)."""
    where = f" for {venue}" if venue else ""
    if not isinstance(time_zone_id, str):
        raise ValueError(f"IB sent no time zone{where}.")
    key = time_zone_id.strip()
    if not key:
        raise ValueError(f"IB sent no time zone{where}.")
    name = IB_ZONES.get(key)
    if name is None and "/" in key and key.isprintable() and len(key) <= 64:
        name = key
    if name is not None:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(
        f"IB's time zone “{_shown(key)}”{where} is not one ScalpSignal knows; expected an "
        "IANA name such as America/Chicago or one of IB's ids such as EST, MET or JST."
    )


class _Sessions:
    """Sorted, non-overlapping [start, end) intervals in epoch seconds."""

    __slots__ = ("ends", "starts")

    def __init__(self, intervals: Iterable[tuple[float, float]]) -> None:
        starts: list[float] = []
        ends: list[float] = []
        for start, end in sorted(intervals):
            if end <= start:
                continue
            if ends and start <= ends[-1]:  # touching or overlapping: one session
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self.starts = starts
        self.ends = ends

    def is_open(self, t: float) -> bool:
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def next_start(self, t: float) -> float | None:
        i = bisect_right(self.starts, t)
        return self.starts[i] if i < len(self.starts) else None


class TradingHours:
    """When one instrument trades: its sessions (all hours) and its liquid sessions (regular
    trading hours, RTH) as UTC intervals, the exchange's time zone and the venue's name.

    ``until`` is the end of what the schedule covers (IB sends about a week): past it the
    hours are unknown, not closed. Times passed in must be timezone-aware (ValueError).
    """

    __slots__ = ("_liquid", "_source", "_trading", "time_zone", "until", "venue", "zone")

    def __init__(
        self,
        trading: Iterable[tuple[float, float]],
        liquid: Iterable[tuple[float, float]] | None,
        *,
        zone: ZoneInfo,
        time_zone: str,
        venue: str,
        until: float,
        source: str,
    ) -> None:
        self._trading = _Sessions(trading)
        self._liquid = self._trading if liquid is None else _Sessions(liquid)
        self.zone = zone
        self.time_zone = time_zone
        self.venue = venue
        self.until = until
        self._source = source

    def __repr__(self) -> str:
        return (
            f"<TradingHours {self.venue} ({self.time_zone}): {len(self._trading.starts)} sessions>"
        )

    @classmethod
    def from_ib(
        cls, trading_hours: str, liquid_hours: str, time_zone_id: str, *, venue: str
    ) -> TradingHours:
        """The hours of IB's contract details (``tradingHours``, ``liquidHours``,
        ``timeZoneId``). ``liquid_hours`` empty: RTH are the trading hours. Anything that is
        not a schedule raises ValueError with one sentence naming the venue."""
        zone, zone_name = zone_for(time_zone_id, venue=venue)
        trading, until = _parse_ib(trading_hours, zone, what="trading hours", venue=venue)
        liquid: list[tuple[float, float]] | None = None
        if isinstance(liquid_hours, str) and liquid_hours.strip():
            liquid, liquid_until = _parse_ib(liquid_hours, zone, what="liquid hours", venue=venue)
            until = max(until, liquid_until)
        return cls(
            trading,
            liquid,
            zone=zone,
            time_zone=zone_name,
            venue=venue,
            until=until,
            source="IB's schedule",
        )

    @classmethod
    def always_open(cls, *, venue: str, time_zone: str = "UTC") -> TradingHours:
        """A market that never closes (crypto)."""
        return cls(
            [(-ALWAYS_END, ALWAYS_END)],
            None,
            zone=ZoneInfo(time_zone),
            time_zone=time_zone,
            venue=venue,
            until=ALWAYS_END,
            source="the calendar",
        )

    def _sessions(self, rth: bool) -> _Sessions:
        return self._liquid if rth else self._trading

    def is_open(self, now_utc: datetime, *, rth: bool = False) -> bool:
        """True inside a session (``rth``: a liquid session, IB's regular trading hours)."""
        return self._sessions(rth).is_open(_epoch(now_utc))

    def next_open(self, now_utc: datetime, *, rth: bool = False) -> datetime | None:
        """The start of the next session strictly after ``now_utc`` (aware UTC), None when
        the schedule holds none."""
        start = self._sessions(rth).next_start(_epoch(now_utc))
        return None if start is None else datetime.fromtimestamp(start, UTC)

    def sessions(self, *, rth: bool = False) -> list[tuple[datetime, datetime]]:
        """Every session as (start, end) aware UTC datetimes (for tests and displays)."""
        s = self._sessions(rth)
        return [
            (datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC))
            for a, b in zip(s.starts, s.ends, strict=True)
            if a > -ALWAYS_END and b < ALWAYS_END
        ]

    def line(self, now_utc: datetime, *, rth: bool = False) -> str:
        """The tile's sentence: ``trading (CME Globex)``; ``closed, opens 09:00
        Europe/Berlin`` when the open is less than 24 hours away (the next time the
        exchange's clock shows 09:00); ``closed, opens Sun 17:00 America/Chicago`` within a
        week, ``closed, opens Mon 28 Dec 09:30 America/New_York`` later; ``closed (no
        session in IB's schedule)`` when the schedule holds no later session, and ``hours
        unknown`` past the days it covers."""
        t = _epoch(now_utc)
        sessions = self._sessions(rth)
        if sessions.is_open(t):
            return f"trading ({self.venue})"
        start = sessions.next_start(t)
        if start is None:
            if t >= self.until:
                return "hours unknown"
            return f"closed (no session in {self._source})"
        return f"closed, opens {self._when(t, start)} {self.time_zone}"

    def _when(self, t: float, start: float) -> str:
        opens = datetime.fromtimestamp(start, self.zone)
        clock = f"{opens.hour:02d}:{opens.minute:02d}"
        if start - t < 86_400:
            return clock
        day = WEEKDAYS[opens.weekday()]
        if start - t < 7 * 86_400:
            return f"{day} {clock}"
        return f"{day} {opens.day} {MONTHS[opens.month - 1]} {clock}"


def _parse_day(text: str, *, what: str, venue: str) -> date:
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        day = None
    if day is None or not 1970 <= day.year <= 2200:
        raise ValueError(f"IB's {what} for {venue} name “{text}”, which is not a date.")
    return day


def _at(day: date, hhmm: str, zone: ZoneInfo, *, what: str, venue: str) -> float:
    hours, minutes = int(hhmm[:2]), int(hhmm[2:])
    if hours == 24 and minutes == 0:
        day, hours = day + timedelta(days=1), 0
    if hours > 23 or minutes > 59:
        raise ValueError(f"IB's {what} for {venue} hold “{hhmm}”, which is not a time of day.")
    return datetime.combine(day, time(hours, minutes), tzinfo=zone).timestamp()


def _parse_ib(
    text: object, zone: ZoneInfo, *, what: str, venue: str
) -> tuple[list[tuple[float, float]], float]:
    """Sessions of one IB schedule string and the end of the days it covers."""
    if not isinstance(text, str):
        raise ValueError(f"IB's {what} for {venue} are not text.")
    text = text.strip()
    if not text:
        raise ValueError(f"IB sent no {what} for {venue}.")
    if len(text) > MAX_HOURS_LENGTH:
        raise ValueError(
            f"IB's {what} for {venue} are {len(text):,} characters long, more than the "
            f"{MAX_HOURS_LENGTH:,} a schedule can be."
        )
    if not text.isprintable():
        raise ValueError(f"IB's {what} for {venue} hold control characters: “{_shown(text)}”.")
    sessions: list[tuple[float, float]] = []
    until = -math.inf
    example = "such as 20261123:0930-20261123:1600 or 20261124:CLOSED"
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        day_match = _DAY_RE.match(entry)
        if day_match is None:
            raise ValueError(
                f"IB's {what} for {venue} hold “{_shown(entry)}”, which is not a session "
                f"({example})."
            )
        day = _parse_day(day_match.group(1), what=what, venue=venue)
        until = max(until, datetime.combine(day + timedelta(days=1), time(), zone).timestamp())
        rest = entry[day_match.end() :]
        if rest.upper() == "CLOSED":
            continue
        for index, piece in enumerate(entry.split(",")):
            match = _RANGE_RE.fullmatch(piece.strip())
            if match is None or (index == 0 and match.group(1) is None):
                raise ValueError(
                    f"IB's {what} for {venue} hold “{_shown(entry)}”, which is not a session "
                    f"({example})."
                )
            start_day_text, start_hhmm, end_day_text, end_hhmm = match.groups()
            start_day = (
                _parse_day(start_day_text, what=what, venue=venue) if start_day_text else day
            )
            end_day = (
                _parse_day(end_day_text, what=what, venue=venue) if end_day_text else start_day
            )
            if not end_day_text and end_hhmm < start_hhmm:
                # The older form lists times on the trading day: a range ending before it
                # starts opened the evening before (CME's 1700-1515).
                start_day = start_day - timedelta(days=1)
            start = _at(start_day, start_hhmm, zone, what=what, venue=venue)
            end = _at(end_day, end_hhmm, zone, what=what, venue=venue)
            if end <= start:
                raise ValueError(
                    f"IB's {what} for {venue} hold “{_shown(piece.strip())}”, a session whose "
                    "end is not after its start."
                )
            if end - start > 14 * 86_400:
                raise ValueError(
                    f"IB's {what} for {venue} hold “{_shown(piece.strip())}”, a session "
                    "longer than two weeks."
                )
            sessions.append((start, end))
            until = max(until, end)
    if until == -math.inf:
        raise ValueError(f"IB sent no {what} for {venue}.")
    return sessions, until


# ----------------------------------------------------------------------------------------
# Fallback hours: exchange calendars for the demo and csv feeds.


def venue_name(instrument: Instrument) -> str:
    """How a trader names where ``instrument`` trades: ``CME Globex``, ``Xetra``,
    ``IDEALPRO FX``, ``Nasdaq``; a US stock on SMART is ``US stocks`` (SMART routes to
    every US exchange), another SMART stock its home market (``Xetra`` for EUR)."""
    exchange = instrument.exchange
    if instrument.sec_type == "CASH":
        return VENUES.get(exchange, f"{exchange} FX")
    if exchange == "SMART":
        if instrument.sec_type == "STK" and instrument.currency in ("USD", ""):
            return "US stocks"
        home = HOME_CALENDARS.get(instrument.currency)
        return home[1] if home else "SMART"
    return VENUES.get(exchange, exchange)


def fallback_hours(instrument: Instrument) -> TradingHours:
    """The instrument's hours from exchange calendars (no IB): US stocks NYSE's regular
    session as RTH and 04:00–20:00 New York as trading hours; CME-group futures CME Globex
    (17:00–16:00 Chicago, Sunday to Friday, with CME's holidays); FX Sunday 17:00 to Friday
    17:00 New York; crypto always; other exchanges their own calendar; anything unknown
    NYSE's (with a logged notice). Built once per calendar (the first call imports pandas)."""
    return _fallback(_calendar_kind(instrument), venue_name(instrument))


def _calendar_kind(instrument: Instrument) -> str:
    sec_type, exchange = instrument.sec_type, instrument.exchange
    if sec_type == "CRYPTO":
        return "ALWAYS"
    if sec_type == "CASH":
        return "FX"
    if sec_type == "FUT" and exchange in GLOBEX:
        return "GLOBEX"
    if sec_type == "STK" and exchange == "SMART" and instrument.currency in HOME_CALENDARS:
        return HOME_CALENDARS[instrument.currency][0]
    if sec_type == "STK" and exchange in US_EXCHANGES:
        return "US_STOCKS"
    if sec_type == "IND" and exchange in US_INDEX_EXCHANGES:
        return "XNYS"
    if exchange == "EUREX" and sec_type == "IND":
        return "XETR"  # DAX and ESTX50 values follow the cash market
    code = CALENDARS.get(exchange)
    if code is not None:
        return code
    _unknown_exchange(exchange)
    return "US_STOCKS" if sec_type == "STK" else "XNYS"


@lru_cache(maxsize=64)
def _unknown_exchange(exchange: str) -> None:
    logger.warning(
        "No exchange calendar for %s: its fallback hours are NYSE's (the demo and csv feeds "
        "only; IB sends the real hours).",
        exchange,
    )


@lru_cache(maxsize=32)
def _fallback(kind: str, venue: str) -> TradingHours:
    if kind == "ALWAYS":
        return TradingHours.always_open(venue=venue)
    if kind == "FX":
        return _fx_hours(venue)
    with markethours.quiet():
        code = {"GLOBEX": "CMES", "US_STOCKS": "XNYS"}.get(kind, kind)
        cal = markethours.calendar(code)
        zone_name = str(cal.tz.key if hasattr(cal.tz, "key") else cal.tz)
        zone = ZoneInfo(zone_name)
        sched = cal.schedule
        opens = _epochs(sched["open"])
        closes = _epochs(sched["close"])
        breaks = (
            (_epochs(sched["break_start"]), _epochs(sched["break_end"]))
            if "break_start" in sched.columns and sched["break_start"].notna().any()
            else None
        )
    until = max(closes) if closes else 0.0
    liquid: list[tuple[float, float]] | None = None
    if kind == "GLOBEX":
        trading, liquid = _globex(opens, closes, zone)
    elif kind == "US_STOCKS":
        liquid = list(zip(opens, closes, strict=True))
        # Pre-market from 04:00 (5 h 30 before the 09:30 open), after hours until 20:00
        # (4 h after the close, also on early-close days).
        trading = [(o - 19_800, c + 14_400) for o, c in liquid]
        until += 14_400
    elif breaks is not None:
        trading = []
        for o, c, bs, be in zip(opens, closes, breaks[0], breaks[1], strict=True):
            if math.isnan(bs) or math.isnan(be):
                trading.append((o, c))
            else:
                trading += [(o, bs), (be, c)]
    else:
        trading = list(zip(opens, closes, strict=True))
    return TradingHours(
        trading,
        liquid,
        zone=zone,
        time_zone=zone_name,
        venue=venue,
        until=until,
        source="the exchange calendar",
    )


def _epochs(column: object) -> list[float]:
    """A tz-aware pandas column as epoch seconds (NaT → nan)."""
    import numpy as np
    import pandas as pd

    naive = pd.Series(column).dt.tz_convert(None).to_numpy()
    seconds = naive.astype("datetime64[s]").astype(np.int64).astype(float)
    seconds[np.isnat(naive)] = math.nan
    return [float(v) for v in seconds]


def _globex(
    opens: list[float], closes: list[float], zone: ZoneInfo
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """CME's calendar (CMES) runs each session 17:00–17:00 Chicago; Globex's equity and FX
    futures stop at 16:00 for the daily break (early closes, 12:00 on holidays, stay).
    Regular hours (IB's liquid hours for ES/NQ): 08:30–15:00 Chicago on the session day."""
    trading: list[tuple[float, float]] = []
    liquid: list[tuple[float, float]] = []
    for o, c in zip(opens, closes, strict=True):
        close_local = datetime.fromtimestamp(c, zone)
        if close_local.hour == 17 and close_local.minute == 0:
            c -= 3600
        trading.append((o, c))
        day = close_local.date()
        rth_start = datetime.combine(day, time(8, 30), zone).timestamp()
        rth_end = min(c, datetime.combine(day, time(15, 0), zone).timestamp())
        if rth_start < rth_end:
            liquid.append((rth_start, rth_end))
    return trading, liquid


def _fx_hours(venue: str) -> TradingHours:
    """FX (IDEALPRO): Sunday 17:00 to Friday 17:00 New York, every week from 2000 to 2045."""
    name = "America/New_York"
    zone = ZoneInfo(name)
    sunday = date(2000, 1, 2)
    weeks = []
    while sunday.year < 2046:
        start = datetime.combine(sunday, time(17), zone).timestamp()
        end = datetime.combine(sunday + timedelta(days=5), time(17), zone).timestamp()
        weeks.append((start, end))
        sunday += timedelta(days=7)
    return TradingHours(
        weeks,
        None,
        zone=zone,
        time_zone=name,
        venue=venue,
        until=weeks[-1][1],
        source="the FX calendar",
    )
