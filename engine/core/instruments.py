"""Watchlist items (DESIGN §7.1): ``SYMBOL`` or ``SYMBOL:TYPE[:EXCHANGE[:CURRENCY]]``.

:func:`parse_item` is the one parser of every entry point (pages, admin, CLI, the csv feed,
the feeds, the signal socket's filter): it returns an :class:`Instrument` or raises
:class:`ItemError` with one sentence naming the item. ``Instrument.text`` is the canonical
item text, the name the run, its bars and its events use (``AAPL``, ``ES:FUT:CME``,
``EURUSD:CASH``, ``SAP:STK:IBIS:EUR``). :class:`ContractInfo` is what a feed resolved an
item to (the event's additive ``contract`` object).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from engine.core.indicators import price_decimals
from engine.core.inputs import shown

__all__ = [
    "DEFAULT_EXCHANGE",
    "DEFAULT_ROLL_DAYS",
    "MAX_ITEM_LENGTH",
    "SEC_TYPES",
    "ContractInfo",
    "Instrument",
    "ItemError",
    "parse_item",
]

SEC_TYPES = ("STK", "FUT", "CASH", "IND", "CRYPTO")
TYPE_NAMES = {
    "STK": "stock",
    "FUT": "future",
    "CASH": "FX pair",
    "IND": "index",
    "CRYPTO": "crypto coin",
}
# Where a type's exchange may be left out. FUT and IND have none: the same root trades on
# several exchanges (IB's contract lookup needs one), see EXCHANGE_HINTS for the usual ones.
DEFAULT_EXCHANGE = {"STK": "SMART", "CASH": "IDEALPRO", "CRYPTO": "PAXOS"}
EXCHANGE_HINTS = {
    **dict.fromkeys(("ES", "MES", "NQ", "MNQ", "RTY", "M2K", "6E", "6J", "6B", "M6E"), "CME"),
    **dict.fromkeys(("YM", "MYM", "ZN", "ZB", "ZF", "ZT", "ZC", "ZS", "ZW"), "CBOT"),
    **dict.fromkeys(("CL", "MCL", "NG", "RB", "HO"), "NYMEX"),
    **dict.fromkeys(("GC", "MGC", "SI", "SIL", "HG"), "COMEX"),
    **dict.fromkeys(("FDAX", "FDXM", "FESX", "FGBL"), "EUREX"),
    **dict.fromkeys(("SPX", "VIX", "XSP"), "CBOE"),
    "NDX": "NASDAQ",
    "DAX": "EUREX",
    "ESTX50": "EUREX",
    "N225": "OSE.JPN",
}
# The currencies IB trades in (its Currency list); a typo gets a sentence, not an IB error.
CURRENCIES = frozenset(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CHF",
        "CAD",
        "AUD",
        "NZD",
        "HKD",
        "SGD",
        "SEK",
        "NOK",
        "DKK",
        "CNH",
        "MXN",
        "ZAR",
        "PLN",
        "HUF",
        "CZK",
        "ILS",
        "KRW",
        "INR",
        "TRY",
        "RUB",
        "SAR",
        "AED",
        "KWD",
        "BRL",
        "TWD",
        "THB",
        "IDR",
        "MYR",
        "PHP",
    ]
)
# A future runs on the nearest month that does not expire within this many days (§7.1; the
# Settings page's default, the IB and demo feeds' default).
DEFAULT_ROLL_DAYS = 5
NO_VOLUME_TYPES = frozenset({"CASH", "IND"})  # IB sends no volume for FX quotes or index values

MAX_SYMBOL_LENGTH = 12
MAX_EXCHANGE_LENGTH = 10
MAX_ITEM_LENGTH = 40  # SYMBOL(12):CRYPTO:EXCHANGE(10):CUR is 34
STOCK_RE = re.compile(r"^[A-Z0-9]+( [A-Z0-9]{1,3})?$")  # a root, optionally a class: BRK B
ROOT_RE = re.compile(r"^[A-Z0-9][A-Z0-9.]*$")  # ES, 6E, SPX, N225, BTC
EXCHANGE_RE = re.compile(r"^[A-Z][A-Z0-9.]*$")  # SMART, IBIS, CME, OSE.JPN, IDEALPRO
PAIR_RE = re.compile(r"^([A-Z]{3})[./]?([A-Z]{3})$")  # EURUSD, EUR.USD, EUR/USD


class ItemError(ValueError):
    """A watchlist item that can't be read; ``str()`` is one sentence naming it."""


def _shown(text: str) -> str:
    return shown(text, keep=16)


@dataclass(frozen=True, slots=True)
class Instrument:
    """One watchlist item, read. ``symbol`` is IB's (for an FX pair the base currency:
    ``EUR``); ``currency`` ``""`` lets IB's contract lookup decide (a future, an index, a
    stock on a named exchange)."""

    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"

    @property
    def text(self) -> str:
        """The canonical item text: parts at their default are left out from the end."""
        if self.sec_type == "CASH":
            parts = [f"{self.symbol}{self.currency}", "CASH"]
            if self.exchange != DEFAULT_EXCHANGE["CASH"]:
                parts.append(self.exchange)
            return ":".join(parts)
        parts = [self.symbol, self.sec_type, self.exchange, self.currency]
        if parts[3] == default_currency(self.sec_type, self.exchange):
            parts.pop()
            if parts[2] == DEFAULT_EXCHANGE.get(self.sec_type):
                parts.pop()
                if self.sec_type == "STK":
                    parts.pop()
        return ":".join(parts)

    @property
    def is_us_stock(self) -> bool:
        """An item of the first release: a stock on SMART in USD."""
        return self.text == self.symbol

    @property
    def has_volume(self) -> bool:
        """False where IB sends no volume (FX, indices): VOLUME and VWAP are undefined."""
        return self.sec_type not in NO_VOLUME_TYPES

    @property
    def what_to_show(self) -> str:
        """IB's data type for this instrument's bars (TWS API docs, "Historical Data Types"
        and "Real Time Bars"): quotes for FX, aggregated trades for crypto, else trades."""
        return {"CASH": "MIDPOINT", "CRYPTO": "AGGTRADES"}.get(self.sec_type, "TRADES")

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.sec_type]


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """What a feed resolved an item to: the event's additive ``contract`` object (§7.1).
    ``min_tick`` is a decimal string (``"0.25"``, ``"0.00005"``), ``""`` when unknown."""

    local_symbol: str
    sec_type: str
    exchange: str
    currency: str
    min_tick: str = ""

    def to_json(self) -> dict[str, object]:
        """The ``contract`` object of an event; ``min_tick`` a JSON number or null."""
        return {
            "local_symbol": self.local_symbol,
            "sec_type": self.sec_type,
            "exchange": self.exchange,
            "currency": self.currency,
            "min_tick": _tick_number(self.min_tick),
        }

    @property
    def decimals(self) -> int | None:
        """Decimals a price of this contract shows (0.25 → 2, 0.00005 → 5), None if unknown."""
        tick = _tick_number(self.min_tick)
        return None if tick is None else price_decimals(float(tick))


def default_currency(sec_type: str, exchange: str) -> str:
    """The currency an item gets when it names none: USD for a stock on SMART and for
    crypto, else ``""`` (IB's contract lookup decides)."""
    return "USD" if sec_type == "CRYPTO" or (sec_type == "STK" and exchange == "SMART") else ""


def _tick_number(text: str) -> int | float | None:
    try:
        tick = Decimal(text)
    except InvalidOperation:
        return None
    if not tick.is_finite() or tick <= 0:
        return None
    return int(tick) if tick == tick.to_integral_value() else float(tick)


def _types_sentence() -> str:
    return ", ".join(SEC_TYPES[:-1]) + f" or {SEC_TYPES[-1]}"


def _check_symbol(raw: str, symbol: str, sec_type: str) -> str:
    # The item is named first when the symbol is only a part of it.
    item = f"“{_shown(raw)}”: " if raw != symbol else ""
    if not symbol:
        raise ItemError(f"“{_shown(raw)}” has no symbol before the first ':'.")
    if sec_type == "STK":
        words = symbol.split(" ")
        if "." in symbol and len(words) == 1:
            root, _, suffix = symbol.partition(".")
            symbol = f"{root} {suffix}"
        if STOCK_RE.match(symbol) and len(symbol) <= MAX_SYMBOL_LENGTH:
            return symbol
        if len(words) > 1 and all(re.fullmatch(r"[A-Z0-9]+(\.[A-Z0-9]+)?", w) for w in words):
            raise ItemError(
                f"{item}“{_shown(symbol)}” looks like {len(words)} symbols: separate items "
                "with commas (a class share is written BRK B or BRK.B)."
            )
    elif ROOT_RE.match(symbol) and len(symbol) <= MAX_SYMBOL_LENGTH:
        return symbol
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise ItemError(
            f"{item}“{_shown(symbol)}” is too long: a symbol has 1–{MAX_SYMBOL_LENGTH} characters."
        )
    raise ItemError(
        f"{item}“{_shown(symbol)}” is not a valid symbol: use letters, digits, '.' or a space."
    )


def _check_exchange(raw: str, exchange: str) -> str:
    if EXCHANGE_RE.match(exchange) and len(exchange) <= MAX_EXCHANGE_LENGTH:
        return exchange
    raise ItemError(
        f"“{_shown(raw)}”: “{_shown(exchange)}” is not an exchange code; use IB's name, such "
        "as SMART, IBIS, CME, IDEALPRO or CBOE."
    )


def _check_currency(raw: str, currency: str) -> str:
    if currency in CURRENCIES:
        return currency
    raise ItemError(
        f"“{_shown(raw)}”: “{_shown(currency)}” is not a currency IB trades; use a three-letter "
        "code such as USD, EUR, GBP or JPY."
    )


def parse_item(raw: object) -> Instrument:
    """One watchlist item as an :class:`Instrument`, or :class:`ItemError` with a sentence.

    Upper-cased and trimmed; ``SYMBOL`` is a US stock on SMART in USD (``brk.b`` is
    ``BRK B``); ``SYMBOL:TYPE[:EXCHANGE[:CURRENCY]]`` names any other instrument, with the
    defaults of DESIGN §7.1 (STK SMART/USD, CASH IDEALPRO with the pair's quote currency,
    CRYPTO PAXOS/USD; a future and an index need their exchange).
    """
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ItemError("A watchlist item is text, such as AAPL, ES:FUT:CME or EURUSD:CASH.")
    text = " ".join(raw.split()).upper()
    if not text:
        raise ItemError("A watchlist item can't be empty.")
    if len(text) > MAX_ITEM_LENGTH:
        raise ItemError(
            f"“{_shown(text)}” is too long: an item has at most {MAX_ITEM_LENGTH} characters."
        )
    parts = [part.strip() for part in text.split(":")]
    if len(parts) == 1:
        return Instrument(_check_symbol(text, parts[0], "STK"))
    if len(parts) > 4:
        raise ItemError(
            f"“{_shown(text)}” has {len(parts)} parts; an item is SYMBOL or "
            "SYMBOL:TYPE[:EXCHANGE[:CURRENCY]], such as ES:FUT:CME or SAP:STK:IBIS:EUR."
        )
    symbol, sec_type, *rest = parts
    if sec_type not in SEC_TYPES:
        raise ItemError(
            f"“{_shown(text)}”: “{_shown(sec_type)}” is not an instrument type; use "
            f"{_types_sentence()}."
        )
    if any(not part for part in rest):
        raise ItemError(f"“{_shown(text)}” has an empty part between colons.")
    exchange = _check_exchange(text, rest[0]) if rest else ""
    currency = _check_currency(text, rest[1]) if len(rest) > 1 else ""
    if sec_type == "CASH":
        return _parse_pair(text, symbol, exchange, currency)
    symbol = _check_symbol(text, symbol, sec_type)
    if not exchange:
        if sec_type not in DEFAULT_EXCHANGE:
            hint = EXCHANGE_HINTS.get(symbol)
            example = f"{symbol}:{sec_type}:{hint}" if hint else f"{symbol}:{sec_type}:CME"
            raise ItemError(
                f"“{_shown(text)}”: a{'n' if sec_type == 'IND' else ''} "
                f"{TYPE_NAMES[sec_type]} needs its exchange, such as {example}."
            )
        exchange = DEFAULT_EXCHANGE[sec_type]
    return Instrument(symbol, sec_type, exchange, currency or default_currency(sec_type, exchange))


def _parse_pair(text: str, symbol: str, exchange: str, currency: str) -> Instrument:
    pair = PAIR_RE.match(symbol)
    if pair is None:
        if re.fullmatch(r"[A-Z]{3}", symbol) and currency:
            base, quote = symbol, currency
        else:
            raise ItemError(
                f"“{_shown(text)}”: an FX item names its pair, such as EURUSD:CASH or "
                "USDJPY:CASH (base and quote currency)."
            )
    else:
        base, quote = pair.groups()
    for code in (base, quote):
        _check_currency(text, code)
    if base == quote:
        raise ItemError(f"“{_shown(text)}”: a pair needs two different currencies.")
    if currency and currency != quote:
        raise ItemError(
            f"“{_shown(text)}”: the pair {base}{quote} is quoted in {quote}, not {currency}."
        )
    return Instrument(base, "CASH", exchange or DEFAULT_EXCHANGE["CASH"], quote)
