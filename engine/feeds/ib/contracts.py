"""Which of the contracts IB's lookup found an item streams (no IB library import).

A future is every month IB lists: :func:`front_month` picks the nearest whose last trade date
is more than the roll window away, by the exchange's date. Anything else must be exactly one
contract: several make a sentence listing the candidates and saying what to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.instruments import DEFAULT_ROLL_DAYS, Instrument
from engine.feeds.ib.library import IBContract


class ContractChoiceError(ValueError):
    """The item can't be streamed as IB answered; ``str()`` is one sentence naming it."""


def exchange_zone(contract: IBContract) -> ZoneInfo:
    """The contract's exchange time zone (IB's ``timeZoneId``), UTC if IB's name is unknown."""
    try:
        return ZoneInfo(contract.time_zone_id) if contract.time_zone_id else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def exchange_date(contract: IBContract, now_utc: datetime) -> date:
    """Today at the contract's exchange."""
    return now_utc.astimezone(exchange_zone(contract)).date()


def last_trade_day(contract: IBContract) -> date | None:
    """The contract's last trade date (``YYYYMMDD``; a bare month ``YYYYMM`` counts as its
    first day, the earliest it can be), None if IB sent none."""
    text = contract.last_trade_date.strip()[:8]
    try:
        if len(text) == 8:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if len(text) == 6:
            return date(int(text[:4]), int(text[4:6]), 1)
    except ValueError:
        return None
    return None


def front_month(
    months: Sequence[IBContract], now_utc: datetime, roll_days: int = DEFAULT_ROLL_DAYS
) -> IBContract | None:
    """The nearest month whose last trade date is more than ``roll_days`` days after today
    at its exchange; None if there is none. Of months trading out on the same day, the one
    whose trading class is the root (``ES``, not a weekly class) wins."""
    eligible: list[tuple[date, int, IBContract]] = []
    for month in months:
        last = last_trade_day(month)
        if last is None:
            continue
        if (last - exchange_date(month, now_utc)).days > roll_days:
            eligible.append((last, month.trading_class != month.ib_symbol, month))
    if not eligible:
        return None
    return min(eligible, key=lambda item: (item[0], item[1], item[2].con_id))[2]


def _days(count: int) -> str:
    return f"{count} day{'s' if count != 1 else ''}"


def choose_contract(
    instrument: Instrument,
    matches: Sequence[IBContract],
    *,
    now_utc: datetime | None = None,
    roll_days: int = DEFAULT_ROLL_DAYS,
) -> IBContract:
    """The one contract ``instrument`` streams, of the ``matches`` IB's lookup found (at
    least one); :class:`ContractChoiceError` with a sentence otherwise."""
    item = instrument.text
    if not matches:
        raise ContractChoiceError(unknown_sentence(instrument))
    if instrument.sec_type == "FUT":
        now_utc = now_utc or datetime.now(UTC)
        chosen = front_month(matches, now_utc, roll_days)
        if chosen is not None:
            return chosen
        listed = sorted(
            (m for m in matches if last_trade_day(m) is not None),
            key=lambda m: last_trade_day(m) or date.min,
        )
        today = exchange_date(matches[0], now_utc)
        if listed:
            last = listed[-1]
            latest = (
                f" (the latest IB lists, {last.local_symbol or last.ib_symbol}, trades until "
                f"{last_trade_day(last):%Y-%m-%d})"
            )
        else:
            latest = ""
        raise ContractChoiceError(
            f"{item}: no front month: IB lists no {instrument.symbol} future on "
            f"{instrument.exchange} whose last trade date is more than {_days(roll_days)} "
            f"after today ({today:%Y-%m-%d}){latest}; shorten the roll window or pick "
            "another contract."
        )
    if len(matches) == 1:
        return matches[0]
    raise ContractChoiceError(ambiguous_sentence(instrument, matches))


def ambiguous_sentence(instrument: Instrument, matches: Sequence[IBContract]) -> str:
    """``SAP:STK:IBIS: IB found 2 contracts: SAP (IBIS, EUR), SAP (IBIS, USD); add the
    currency, e.g. SAP:STK:IBIS:EUR.``"""
    names = ", ".join(m.describe() for m in matches[:6])
    if len(matches) > 6:
        names += f" and {len(matches) - 6} more"
    first = matches[0]
    currencies = {m.currency for m in matches}
    if len(currencies) > 1:
        what = "add the currency"
        example = Instrument(instrument.symbol, instrument.sec_type, instrument.exchange,
                             first.currency)  # fmt: skip
    else:
        what = "name the exchange"
        venue = first.primary_exchange or first.exchange
        example = Instrument(instrument.symbol, instrument.sec_type, venue, first.currency)
    text = example.text
    if text == instrument.text:  # nothing an item can add tells them apart
        return (
            f"{instrument.text}: IB found {len(matches)} contracts: {names}; an item can't "
            "tell them apart, so it can't be streamed."
        )
    return f"{instrument.text}: IB found {len(matches)} contracts: {names}; {what}, e.g. {text}."


def unknown_sentence(instrument: Instrument) -> str:
    """IB knows no such instrument (its error 200): the sentence naming the item."""
    item = instrument.text
    if instrument.is_us_stock:
        return (
            f"{item}: IB doesn't know this symbol as a stock on SMART in USD. Check the ticker "
            "(for example BRK B, not BRK.B)."
        )
    kind = instrument.type_name
    where = f" on {instrument.exchange}" if instrument.exchange else ""
    money = f" in {instrument.currency}" if instrument.currency else ""
    if instrument.sec_type == "CASH":
        return (
            f"{item}: IB doesn't know the FX pair {instrument.symbol}.{instrument.currency}"
            f"{where}. Check the currencies."
        )
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"{item}: IB doesn't know {instrument.symbol} as {article} {kind}{where}{money}. Check "
        "the symbol, the type and the exchange."
    )
