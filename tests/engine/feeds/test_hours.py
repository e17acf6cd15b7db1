"""Trading hours per instrument: IB's contract-details schedules (both formats, time zones,
junk) and the exchange-calendar fallback of the demo and csv feeds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.instruments import parse_item
from engine.feeds.hours import (
    MAX_HOURS_LENGTH,
    TradingHours,
    fallback_hours,
    venue_name,
    zone_for,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# IB's schedules

NYSE_TRADING = (
    "20261123:0400-20261123:2000;20261124:0400-20261124:2000;20261125:0400-20261125:2000;"
    "20261126:CLOSED;20261127:0400-20261127:1700"
)
NYSE_LIQUID = (
    "20261123:0930-20261123:1600;20261124:0930-20261124:1600;20261125:0930-20261125:1600;"
    "20261126:CLOSED;20261127:0930-20261127:1300"
)
CME_TRADING = (
    "20261119:1700-20261120:1600;20261121:CLOSED;20261122:1700-20261123:1600;"
    "20261123:1700-20261124:1600;"
)
CME_LIQUID = "20261120:0830-20261120:1500;20261121:CLOSED;20261123:0830-20261123:1500"


def nyse() -> TradingHours:
    return TradingHours.from_ib(NYSE_TRADING, NYSE_LIQUID, "US/Eastern", venue="Nasdaq")


def cme() -> TradingHours:
    return TradingHours.from_ib(CME_TRADING, CME_LIQUID, "US/Central", venue="CME Globex")


def test_newer_format_with_liquid_hours():
    hours = nyse()
    assert hours.time_zone == "America/New_York"
    assert hours.sessions()[0] == (utc(2026, 11, 23, 9), utc(2026, 11, 24, 1))
    assert hours.sessions(rth=True)[0] == (utc(2026, 11, 23, 14, 30), utc(2026, 11, 23, 21))
    premarket = utc(2026, 11, 23, 14)  # 09:00 New York
    assert hours.is_open(premarket)
    assert not hours.is_open(premarket, rth=True)
    assert hours.line(premarket) == "trading (Nasdaq)"
    assert hours.line(premarket, rth=True) == "closed, opens 09:30 America/New_York"
    assert hours.is_open(utc(2026, 11, 23, 14, 30), rth=True)
    assert not hours.is_open(utc(2026, 11, 23, 21), rth=True)  # 16:00: the end is outside


def test_closed_day_early_close_and_the_end_of_the_schedule():
    hours = nyse()
    thanksgiving = utc(2026, 11, 26, 15)
    assert not hours.is_open(thanksgiving)
    assert hours.next_open(thanksgiving) == utc(2026, 11, 27, 9)
    assert hours.line(thanksgiving) == "closed, opens 04:00 America/New_York"
    assert hours.line(thanksgiving, rth=True) == "closed, opens 09:30 America/New_York"
    after_early_close = utc(2026, 11, 27, 18, 30)  # 13:30: after hours until 17:00
    assert hours.is_open(after_early_close)
    assert hours.line(after_early_close, rth=True) == "closed (no session in IB's schedule)"
    assert hours.next_open(after_early_close, rth=True) is None
    assert hours.line(utc(2026, 11, 27, 22, 30)) == "closed (no session in IB's schedule)"
    # Past the last day IB listed (Friday, New York), the hours are unknown, not closed.
    assert hours.until == utc(2026, 11, 28, 5).timestamp()
    assert hours.line(utc(2026, 11, 28, 5)) == "hours unknown"
    assert not hours.is_open(utc(2026, 11, 30, 15))


def test_sessions_crossing_midnight_and_the_weekend():
    hours = cme()
    assert hours.sessions()[:2] == [
        (utc(2026, 11, 19, 23), utc(2026, 11, 20, 22)),
        (utc(2026, 11, 22, 23), utc(2026, 11, 23, 22)),
    ]
    assert hours.is_open(utc(2026, 11, 20, 21, 59))  # Friday 15:59 Chicago
    friday_close = utc(2026, 11, 20, 22)
    assert not hours.is_open(friday_close)
    assert hours.next_open(friday_close) == utc(2026, 11, 22, 23)
    assert hours.line(friday_close) == "closed, opens Sun 17:00 America/Chicago"
    assert not hours.is_open(utc(2026, 11, 21, 12))  # Saturday
    assert hours.line(utc(2026, 11, 22, 23, 30)) == "trading (CME Globex)"  # Sunday evening
    assert hours.line(utc(2026, 11, 23, 3)) == "trading (CME Globex)"  # Monday after midnight
    daily_break = utc(2026, 11, 23, 22, 30)  # 16:30 Chicago
    assert not hours.is_open(daily_break)
    assert hours.line(daily_break) == "closed, opens 17:00 America/Chicago"


def test_next_open_is_strictly_later_and_an_open_instant_is_open():
    hours = cme()
    sunday_open = utc(2026, 11, 22, 23)
    assert hours.is_open(sunday_open)
    assert hours.next_open(sunday_open) == utc(2026, 11, 23, 23)
    assert hours.next_open(sunday_open - timedelta(seconds=1)) == sunday_open
    saturday = utc(2026, 11, 21, 12)
    assert hours.next_open(saturday, rth=True) == utc(2026, 11, 23, 14, 30)
    assert hours.line(saturday, rth=True) == "closed, opens Mon 08:30 America/Chicago"


def test_a_far_open_names_its_date():
    hours = TradingHours.from_ib(
        "20261201:CLOSED;20261228:0930-20261228:1600", "", "EST", venue="NYSE"
    )
    assert hours.line(utc(2026, 12, 1, 12)) == "closed, opens Mon 28 Dec 09:30 America/New_York"
    assert hours.line(utc(2026, 12, 26, 12)) == "closed, opens Mon 09:30 America/New_York"
    assert hours.line(utc(2026, 12, 27, 15)) == "closed, opens 09:30 America/New_York"


def test_older_format_ranges_on_one_day_are_one_session():
    hours = TradingHours.from_ib(
        "20090507:0700-1830,1830-2330;20090508:CLOSED", "", "EST", venue="NYSE"
    )
    assert hours.sessions() == [(utc(2009, 5, 7, 11), utc(2009, 5, 8, 3, 30))]  # EDT
    assert hours.is_open(utc(2009, 5, 7, 22, 30))  # 18:30 New York: no gap
    assert hours.sessions(rth=True) == hours.sessions()  # no liquid hours: the same


def test_older_format_range_ending_before_its_start_opened_the_evening_before():
    hours = TradingHours.from_ib(
        "20130114:1700-1515,1530-1615;20130115:1700-1515,1530-1615",
        "20130114:0830-1515;20130115:0830-1515",
        "CST",
        venue="CME Globex",
    )
    assert hours.sessions() == [
        (utc(2013, 1, 13, 23), utc(2013, 1, 14, 21, 15)),
        (utc(2013, 1, 14, 21, 30), utc(2013, 1, 14, 22, 15)),
        (utc(2013, 1, 14, 23), utc(2013, 1, 15, 21, 15)),
        (utc(2013, 1, 15, 21, 30), utc(2013, 1, 15, 22, 15)),
    ]
    assert hours.sessions(rth=True)[0] == (utc(2013, 1, 14, 14, 30), utc(2013, 1, 14, 21, 15))


def test_a_whole_day_ending_at_2400_and_lowercase_closed():
    hours = TradingHours.from_ib(
        "20261123:0000-2400;20261124:closed", "", "US/Eastern", venue="PAXOS"
    )
    assert hours.sessions() == [(utc(2026, 11, 23, 5), utc(2026, 11, 24, 5))]


def test_us_summer_time_starts_between_two_sessions():
    hours = TradingHours.from_ib(
        "20260305:1700-20260306:1600;20260307:CLOSED;20260308:1700-20260309:1600",
        "",
        "US/Central",
        venue="CME Globex",
    )
    assert hours.sessions() == [
        (utc(2026, 3, 5, 23), utc(2026, 3, 6, 22)),  # CST, UTC-6
        (utc(2026, 3, 8, 22), utc(2026, 3, 9, 21)),  # CDT, UTC-5
    ]
    assert hours.line(utc(2026, 3, 7, 12)) == "closed, opens Sun 17:00 America/Chicago"


def test_a_session_across_the_end_of_us_summer_time():
    hours = TradingHours.from_ib("20261031:1700-20261101:1600", "", "CST", venue="CME Globex")
    # Saturday 17:00 CDT (UTC-5) to Sunday 16:00 CST (UTC-6): 24 hours.
    assert hours.sessions() == [(utc(2026, 10, 31, 22), utc(2026, 11, 1, 22))]


def test_european_summer_time_with_ibs_met_zone():
    hours = TradingHours.from_ib(
        "20260327:0900-20260327:1730;20260328:CLOSED;20260329:CLOSED;20260330:0900-20260330:1730",
        "",
        "MET",
        venue="Xetra",
    )
    assert hours.time_zone == "Europe/Berlin"
    assert hours.sessions() == [
        (utc(2026, 3, 27, 8), utc(2026, 3, 27, 16, 30)),  # CET
        (utc(2026, 3, 30, 7), utc(2026, 3, 30, 15, 30)),  # CEST
    ]
    assert hours.line(utc(2026, 3, 29, 20)) == "closed, opens 09:00 Europe/Berlin"
    assert hours.line(utc(2026, 3, 28, 20)) == "closed, opens Mon 09:00 Europe/Berlin"


@pytest.mark.parametrize(
    ("zone_id", "name"),
    [
        ("US/Eastern", "America/New_York"),
        ("EST", "America/New_York"),
        ("EST5EDT", "America/New_York"),
        ("US/Central", "America/Chicago"),
        ("CST", "America/Chicago"),
        ("MET", "Europe/Berlin"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("America/New_York", "America/New_York"),
        ("JST", "Asia/Tokyo"),
        ("Japan", "Asia/Tokyo"),
        ("Hongkong", "Asia/Hong_Kong"),
        ("GB", "Europe/London"),
        ("GMT", "Europe/London"),
        ("Australia/NSW", "Australia/Sydney"),
        ("IST", "Asia/Kolkata"),
        ("Asia/Singapore", "Asia/Singapore"),
        ("UTC", "UTC"),
    ],
)
def test_ib_zone_ids(zone_id, name):
    zone, shown = zone_for(zone_id)
    assert shown == name
    assert zone.key == name


def test_ib_est_means_new_york_with_summer_time():
    hours = TradingHours.from_ib("20260715:0930-20260715:1600", "", "EST", venue="NYSE")
    assert hours.sessions() == [(utc(2026, 7, 15, 13, 30), utc(2026, 7, 15, 20))]


@pytest.mark.parametrize(
    "zone_id", ["", "   ", "XYZ", "America", "../../etc/passwd", "US/Central\x00", "Mars/Olympus"]
)
def test_unknown_zones_are_refused_with_a_sentence(zone_id):
    with pytest.raises(ValueError) as err:
        TradingHours.from_ib("20261123:0930-20261123:1600", "", zone_id, venue="Xetra")
    message = str(err.value)
    assert "time zone" in message and "for Xetra" in message
    assert message.endswith(".") and message.isprintable() and len(message) < 250


JUNK = [
    ("x" * 5000, "not a session"),
    ("2026\x001123:0930-1600", "control characters"),
    ("20261399:0930-20261399:1600", "not a date"),
    ("20260230:0930-20260230:1600", "not a date"),
    ("99991231:0930-1600", "not a date"),
    ("20261123:1600-20261123:0930", "end is not after its start"),
    ("20261123:0930-20261123:0930", "end is not after its start"),
    ("20261123:2500-2600", "not a time of day"),
    ("20261123:0960-1000", "not a time of day"),
    ("20261123:0930-20261223:1600", "longer than two weeks"),
    ("", "no trading hours"),
    (";;;", "no trading hours"),
    ("CLOSED", "not a session"),
    ("20261123", "not a session"),
    ("2026112:0930-1600", "not a session"),
    ("20261123:0930-1600,", "not a session"),
    ("20261123:0930-1600;junk", "not a session"),
    ("y" * (MAX_HOURS_LENGTH + 1), "more than the 20,000"),
    (12345, "not text"),
    (None, "not text"),
]


@pytest.mark.parametrize(("text", "problem"), JUNK)
def test_junk_is_a_sentence_naming_the_venue(text, problem):
    with pytest.raises(ValueError) as err:
        TradingHours.from_ib(text, "", "US/Central", venue="CME Globex")
    message = str(err.value)
    assert problem in message
    assert "for CME Globex" in message
    assert message.endswith(".") and message.isprintable() and len(message) < 250


def test_junk_liquid_hours_are_refused_too():
    with pytest.raises(ValueError, match="liquid hours for NYSE"):
        TradingHours.from_ib(NYSE_TRADING, "20261399:0930-1600", "EST", venue="NYSE")


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        nyse().is_open(datetime(2026, 11, 23, 15))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        nyse().line(datetime(2026, 11, 23, 15))  # noqa: DTZ001


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.from_regex(r"[0-9:;,\-A-Z]{0,80}", fullmatch=True))
def test_any_text_is_a_schedule_or_a_sentence(text):
    try:
        hours = TradingHours.from_ib(text, text, "US/Central", venue="CME Globex")
    except ValueError as err:
        assert str(err).endswith(".")
    else:
        hours.line(utc(2026, 11, 23, 12))


SESSION = st.tuples(
    st.integers(0, 40),  # day from 2026-01-01
    st.integers(0, 24 * 60 - 1),  # start minute
    st.integers(1, 3000),  # minutes long
)


@settings(max_examples=150, deadline=None)
@given(
    sessions=st.lists(SESSION, min_size=1, max_size=12),
    zone_id=st.sampled_from(["US/Central", "MET", "JST", "America/New_York", "UTC"]),
    probes=st.lists(st.integers(0, 45 * 86_400), max_size=30),
)
def test_is_open_matches_the_sessions_written(sessions, zone_id, probes):
    zone, _ = zone_for(zone_id)
    base = datetime(2026, 1, 1, tzinfo=zone)
    parts, intervals = [], []
    for day, minute, length in sessions:
        start = (base + timedelta(days=day)).replace(hour=minute // 60, minute=minute % 60)
        end = start + timedelta(minutes=length)  # wall clock, as IB writes it
        start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
        if end_utc <= start_utc:  # a wall-clock range swallowed by a summer-time change
            continue
        parts.append(f"{start:%Y%m%d:%H%M}-{end:%Y%m%d:%H%M}")
        intervals.append((start_utc, end_utc))
    if not parts:
        return
    hours = TradingHours.from_ib(";".join(parts), "", zone_id, venue="Test")
    for offset in probes:
        now = base.astimezone(UTC) + timedelta(seconds=offset)
        expected = any(a <= now < b for a, b in intervals)
        assert hours.is_open(now) == expected
        later = [a for a, _ in intervals if a > now]
        if not expected and later:
            assert hours.next_open(now) == min(later)


# ---------------------------------------------------------------------------------------
# The exchange-calendar fallback (demo and csv feeds)

SATURDAY = utc(2026, 12, 5, 12)


def hours_of(item: str) -> TradingHours:
    return fallback_hours(parse_item(item))


def test_es_on_cme_globex():
    es = hours_of("ES:FUT:CME")
    assert es.venue == "CME Globex" and es.time_zone == "America/Chicago"
    assert es.is_open(utc(2026, 12, 6, 23, 30))  # Sunday 17:30 Chicago
    assert es.line(utc(2026, 12, 6, 23, 30)) == "trading (CME Globex)"
    assert not es.is_open(SATURDAY)
    assert es.line(SATURDAY) == "closed, opens Sun 17:00 America/Chicago"
    assert es.next_open(SATURDAY) == utc(2026, 12, 6, 23)
    assert not es.is_open(utc(2026, 12, 8, 22, 30))  # the daily break, 16:30 Chicago
    assert es.line(utc(2026, 12, 8, 22, 30)) == "closed, opens 17:00 America/Chicago"
    assert es.is_open(utc(2026, 12, 8, 21, 59))
    assert es.is_open(utc(2026, 7, 12, 22, 30))  # a Sunday in summer: 17:30 CDT
    assert not es.is_open(utc(2026, 11, 26, 19))  # Thanksgiving: closed from 12:00
    assert es.is_open(utc(2026, 12, 7, 15), rth=True)  # Monday 09:00 Chicago
    assert not es.is_open(utc(2026, 12, 7, 12), rth=True)
    assert es.line(utc(2026, 12, 7, 12), rth=True) == "closed, opens 08:30 America/Chicago"


def test_eurusd_sunday_to_friday_new_york():
    fx = hours_of("EURUSD:CASH")
    assert fx.venue == "IDEALPRO FX"
    assert fx.is_open(utc(2026, 12, 9, 3))  # Wednesday
    assert fx.is_open(utc(2026, 12, 4, 21, 59))  # Friday 16:59 New York
    assert not fx.is_open(utc(2026, 12, 4, 22))
    assert not fx.is_open(SATURDAY)
    assert fx.line(SATURDAY) == "closed, opens Sun 17:00 America/New_York"
    assert fx.is_open(utc(2026, 12, 6, 22))  # Sunday 17:00 New York
    assert fx.is_open(utc(2026, 7, 5, 21))  # Sunday 17:00 EDT
    assert fx.is_open(utc(2026, 12, 9, 3), rth=True)


def test_sap_on_xetra():
    sap = hours_of("SAP:STK:IBIS:EUR")
    assert sap.venue == "Xetra" and sap.time_zone == "Europe/Berlin"
    evening = utc(2026, 12, 8, 20)
    assert not sap.is_open(evening)
    assert sap.line(evening) == "closed, opens 09:00 Europe/Berlin"
    assert sap.is_open(utc(2026, 12, 8, 8))  # 09:00 Berlin
    assert not sap.is_open(utc(2026, 12, 8, 16, 30))  # 17:30
    assert sap.line(SATURDAY) == "closed, opens Mon 09:00 Europe/Berlin"
    assert sap.is_open(utc(2026, 7, 8, 7))  # 09:00 CEST


def test_btc_always_open():
    btc = hours_of("BTC:CRYPTO")
    for when in (SATURDAY, utc(2026, 12, 25, 3), utc(2030, 1, 1), utc(1999, 1, 1)):
        assert btc.is_open(when)
        assert btc.line(when) == "trading (PAXOS)"
    assert btc.next_open(SATURDAY) is None


def test_us_stocks_regular_and_extended_hours():
    aapl = hours_of("AAPL")
    assert aapl.venue == "US stocks"
    premarket = utc(2026, 12, 8, 10)  # 05:00 New York
    assert aapl.is_open(premarket) and not aapl.is_open(premarket, rth=True)
    assert aapl.line(premarket, rth=True) == "closed, opens 09:30 America/New_York"
    assert aapl.is_open(utc(2026, 12, 8, 14, 30), rth=True)
    assert aapl.is_open(utc(2026, 12, 9, 0, 59))  # 19:59
    assert not aapl.is_open(utc(2026, 12, 9, 1))  # 20:00
    assert aapl.line(SATURDAY) == "closed, opens Mon 04:00 America/New_York"
    assert not aapl.is_open(utc(2026, 12, 25, 15))  # Christmas
    assert aapl.is_open(utc(2026, 11, 27, 21, 30))  # early close 13:00, after hours to 17:00
    assert not aapl.is_open(utc(2026, 11, 27, 21, 30), rth=True)
    # Same hours whatever US exchange the stock names.
    assert hours_of("IBM:STK:NYSE").sessions() == aapl.sessions()
    assert venue_name(parse_item("IBM:STK:NYSE")) == "NYSE"


def test_indices_follow_their_cash_market():
    spx = hours_of("SPX:IND:CBOE")
    assert spx.venue == "CBOE"
    assert not spx.is_open(utc(2026, 12, 8, 10))  # no extended hours for the index value
    assert spx.is_open(utc(2026, 12, 8, 15))
    assert hours_of("DAX:IND:EUREX").time_zone == "Europe/Berlin"


def test_a_lunch_break():
    toyota = hours_of("7203:STK:TSEJ")
    assert toyota.venue == "Tokyo"
    lunch = utc(2026, 12, 9, 3)  # 12:00 Tokyo
    assert not toyota.is_open(lunch)
    assert toyota.line(lunch) == "closed, opens 12:30 Asia/Tokyo"


@pytest.mark.parametrize(
    ("item", "zone", "venue"),
    [
        ("VOD:STK:LSE:GBP", "Europe/London", "LSE"),
        ("700:STK:SEHK:HKD", "Asia/Hong_Kong", "HKEX"),
        ("BHP:STK:ASX:AUD", "Australia/Sydney", "ASX"),
        ("RY:STK:TSE:CAD", "America/Toronto", "TSX"),
        ("FDAX:FUT:EUREX", "Europe/Berlin", "Eurex"),
        ("SAP:STK:SMART:EUR", "Europe/Berlin", "Xetra"),
        ("CL:FUT:NYMEX", "America/Chicago", "CME Globex"),
        ("ZN:FUT:CBOT", "America/Chicago", "CME Globex"),
        ("USDJPY:CASH", "America/New_York", "IDEALPRO FX"),
        ("NDX:IND:NASDAQ", "America/New_York", "Nasdaq"),
    ],
)
def test_other_exchanges_have_their_calendar(item, zone, venue):
    hours = hours_of(item)
    assert (hours.time_zone, hours.venue) == (zone, venue)
    assert hours.sessions()  # a schedule, not an empty one


def test_an_unknown_exchange_falls_back_to_nyse_with_a_notice(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.feeds.hours"):
        hours = hours_of("XYZ:STK:NOWHERE")
    assert hours.venue == "NOWHERE"
    assert hours.time_zone == "America/New_York"
    assert "No exchange calendar for NOWHERE" in caplog.text


def test_the_fallback_is_built_once():
    assert hours_of("ES:FUT:CME") is hours_of("MES:FUT:CME")
    assert hours_of("ES:FUT:CME") is not hours_of("EURUSD:CASH")


def test_a_schedule_of_closed_days_only():
    hours = TradingHours.from_ib(
        "20261225:CLOSED;20261226:CLOSED", "", "US/Central", venue="CME Globex"
    )
    assert hours.sessions() == []
    assert not hours.is_open(utc(2026, 12, 25, 18))
    assert hours.next_open(utc(2026, 12, 25, 18)) is None
    assert hours.line(utc(2026, 12, 25, 18)) == "closed (no session in IB's schedule)"
    assert hours.line(utc(2026, 12, 27, 6)) == "hours unknown"  # after Saturday in Chicago
