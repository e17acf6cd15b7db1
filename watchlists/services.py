"""Every change to watchlists goes through these functions.

A watchlist item (DESIGN §7.1) is ``SYMBOL`` or ``SYMBOL:TYPE[:EXCHANGE[:CURRENCY]]``; it is
read by :func:`engine.core.instruments.parse_item` alone, through :func:`item_parse` here,
whose ValidationError (on ``symbols``) every entry point shows: pages, admin, CLI, the csv
feed, the signal socket's and the history's filters, the alert destinations' filter.
"""

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from engine.core.instruments import Instrument, ItemError, parse_item
from engine.services import engine_assert_stopped, engine_assert_unlocked, engine_state_get
from watchlists.models import MAX_SYMBOLS, Watchlist, WatchlistItem

_BOX_SEPARATORS = re.compile(r"[,;\r\n]+")
_SPACED_COLON = re.compile(r"\s*:\s*")


def item_parse(raw: object) -> Instrument:
    """One watchlist item as an :class:`Instrument`, or ValidationError on ``symbols`` with
    the parser's sentence naming the item (``“ES:FUT”: a future needs its exchange, such as
    ES:FUT:CME.``)."""
    try:
        return parse_item(raw)
    except ItemError as err:
        raise ValidationError({"symbols": str(err)}) from None


def symbol_normalize(raw: object) -> str:
    """One item's canonical text (``brk.b`` → ``BRK B``, ``eur.usd:cash`` → ``EURUSD:CASH``,
    ``SAP:STK:IBIS:EUR`` as is), or ValidationError on ``symbols`` with a sentence.

    The text every entry point compares and stores: the run, its bars and its signals name
    an item by it.
    """
    return item_parse(raw).text


def symbols_split(text: str) -> list[str]:
    """The items typed in one box, as typed (not yet normalised).

    Commas, semicolons and new lines separate items. A piece with spaces stays whole when
    it is one item (``BRK B``, ``SAP : STK : IBIS``) and is split at the spaces otherwise
    (``AAPL MSFT``, ``EURUSD:CASH AAPL``), so a ticker typed the IB way and a
    space-separated list both read as meant. Ambiguous: ``AAPL IBM`` is one symbol (IBM
    could be a series suffix); show the user what was read.
    """
    pieces: list[str] = []
    for part in _BOX_SEPARATORS.split(text or ""):
        part = _SPACED_COLON.sub(":", part.strip())
        if not part:
            continue
        if " " in " ".join(part.split()):
            try:
                parse_item(part)
            except ItemError:
                pieces.extend(part.split())
                continue
        pieces.append(part)
    return pieces


def items_normalize(raw_items: Iterable[object]) -> list[Instrument]:
    """The items of one list, in order: each read by :func:`item_parse`, each once, at most
    ``MAX_SYMBOLS``; else ValidationError on ``symbols`` with a sentence."""
    instruments: list[Instrument] = []
    for raw in raw_items:
        instrument = item_parse(raw)
        if any(seen.text == instrument.text for seen in instruments):
            raise ValidationError({"symbols": f"{instrument.text} is already in the watchlist."})
        instruments.append(instrument)
    if len(instruments) > MAX_SYMBOLS:
        raise ValidationError(
            {"symbols": f"A watchlist holds at most {MAX_SYMBOLS} symbols; remove one first."}
        )
    return instruments


def symbols_normalize(raw_symbols: Iterable[object]) -> list[str]:
    """:func:`items_normalize` as item texts."""
    return [instrument.text for instrument in items_normalize(raw_symbols)]


def _item_rows(watchlist: Watchlist, instruments: list[Instrument]) -> list[WatchlistItem]:
    return [
        WatchlistItem(
            watchlist=watchlist,
            text=instrument.text,
            symbol=instrument.symbol,
            sec_type=instrument.sec_type,
            exchange=instrument.exchange,
            currency=instrument.currency,
            position=position,
        )
        for position, instrument in enumerate(instruments)
    ]


def watchlist_name_clean(raw: object) -> str:
    """A watchlist name, trimmed: one line of text of 1–60 characters; else ValidationError."""
    if not isinstance(raw, str):
        raise ValidationError({"name": "A watchlist name is text, such as Tech."})
    name = raw.strip()
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        raise ValidationError(
            {"name": "A watchlist name is one line of text: no line breaks, tabs or NUL."}
        )
    if not name:
        raise ValidationError({"name": "Give the watchlist a name."})
    max_length = Watchlist._meta.get_field("name").max_length or 0
    if len(name) > max_length:
        raise ValidationError({"name": f"A watchlist name has at most {max_length} characters."})
    return name


def watchlist_check_editable(*, watchlist: Watchlist, action: str = "changing it") -> None:
    """Raise ValidationError when a live engine run holds ``watchlist``."""
    engine_assert_unlocked(watchlist=watchlist, action=action)


@transaction.atomic
def _assert_name_free(name: str, *, watchlist: Watchlist | None = None) -> None:
    others = Watchlist.objects.filter(name=name)
    if watchlist is not None and watchlist.pk is not None:
        others = others.exclude(pk=watchlist.pk)
    if name and others.exists():
        raise ValidationError(
            {"name": f"A watchlist named “{name}” already exists; choose another name."}
        )


@transaction.atomic
def watchlist_create(*, name: str, symbols: Iterable[object] = (), activate: bool = False):
    """Create a list (all or nothing). It becomes active when asked, or when no list is
    active and no run is live; asking while a run is live is refused before anything is made."""
    instruments = items_normalize(symbols)
    if activate:
        engine_assert_stopped(action="switching the active watchlist")
    watchlist = Watchlist(name=watchlist_name_clean(name))
    _assert_name_free(watchlist.name)
    watchlist.full_clean()
    watchlist.save()
    WatchlistItem.objects.bulk_create(_item_rows(watchlist, instruments))
    if activate or (
        not Watchlist.objects.filter(is_active=True).exists() and not engine_state_get().is_locked
    ):
        watchlist_activate(watchlist=watchlist)
    return watchlist


def watchlist_rename(*, watchlist: Watchlist, name: str) -> Watchlist:
    watchlist_check_editable(watchlist=watchlist)
    watchlist.name = watchlist_name_clean(name)
    _assert_name_free(watchlist.name, watchlist=watchlist)
    watchlist.full_clean()
    watchlist.save()
    return watchlist


@transaction.atomic
def watchlist_set_symbols(*, watchlist: Watchlist, symbols: Iterable[object]) -> Watchlist:
    watchlist_check_editable(watchlist=watchlist)
    instruments = items_normalize(symbols)
    watchlist.items.all().delete()
    WatchlistItem.objects.bulk_create(_item_rows(watchlist, instruments))
    watchlist.save(update_fields=["updated_at"])
    return watchlist


def watchlist_add_symbol(*, watchlist: Watchlist, symbol: object) -> Watchlist:
    return watchlist_set_symbols(watchlist=watchlist, symbols=[*watchlist.symbols, symbol])


def watchlist_remove_symbol(*, watchlist: Watchlist, symbol: str) -> Watchlist:
    symbols = watchlist.symbols
    try:
        wanted = symbol_normalize(symbol)
    except ValidationError:
        wanted = " ".join(str(symbol).split()).upper()
    if wanted not in symbols:
        raise ValidationError({"symbols": f"{wanted} is not in the watchlist."})
    return watchlist_set_symbols(watchlist=watchlist, symbols=[s for s in symbols if s != wanted])


@transaction.atomic
def watchlist_activate(*, watchlist: Watchlist) -> Watchlist:
    if watchlist.is_active:
        return watchlist
    engine_assert_stopped(action="switching the active watchlist")
    Watchlist.objects.filter(is_active=True).update(is_active=False)
    watchlist.is_active = True
    watchlist.save(update_fields=["is_active", "updated_at"])
    return watchlist


def watchlist_delete(*, watchlist: Watchlist) -> None:
    watchlist_check_editable(watchlist=watchlist, action="deleting it")
    watchlist.delete()


@transaction.atomic
def watchlists_delete(*, watchlists: Iterable[Watchlist]) -> None:
    """Delete several lists, all or nothing: refused if a live run holds any of them."""
    watchlists = list(watchlists)
    for watchlist in watchlists:
        watchlist_check_editable(watchlist=watchlist, action="deleting it")
    for watchlist in watchlists:
        watchlist.delete()


def watchlist_get_active() -> Watchlist | None:
    return Watchlist.objects.filter(is_active=True).prefetch_related("items").first()
