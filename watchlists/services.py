"""Every change to watchlists goes through these functions."""

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from engine.services import engine_assert_stopped, engine_assert_unlocked
from watchlists.models import MAX_SYMBOLS, Watchlist, WatchlistItem

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9. ]{0,11}$")


def symbol_normalize(raw: object) -> str:
    """Upper-case, trim and validate one ticker (letters, digits, '.', space; 1–12 chars)."""
    symbol = " ".join(str(raw or "").split()).upper()
    if not symbol:
        raise ValidationError({"symbols": "A symbol can't be empty."})
    if len(symbol) > 12:
        raise ValidationError({"symbols": f"“{symbol}” is too long: a symbol has 1–12 characters."})
    if not SYMBOL_RE.match(symbol):
        raise ValidationError(
            {"symbols": f"“{symbol}” is not a valid symbol: use letters, digits, '.' or a space."}
        )
    return symbol


def symbols_normalize(raw_symbols: Iterable[object]) -> list[str]:
    symbols: list[str] = []
    for raw in raw_symbols:
        symbol = symbol_normalize(raw)
        if symbol in symbols:
            raise ValidationError({"symbols": f"{symbol} is already in the watchlist."})
        symbols.append(symbol)
    if len(symbols) > MAX_SYMBOLS:
        raise ValidationError(
            {"symbols": f"A watchlist holds at most {MAX_SYMBOLS} symbols; remove one first."}
        )
    return symbols


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


def watchlist_create(*, name: str, symbols: Iterable[object] = (), activate: bool = False):
    clean_symbols = symbols_normalize(symbols)
    watchlist = Watchlist(name=(name or "").strip())
    _assert_name_free(watchlist.name)
    watchlist.full_clean()
    watchlist.save()
    WatchlistItem.objects.bulk_create(
        WatchlistItem(watchlist=watchlist, symbol=s, position=i)
        for i, s in enumerate(clean_symbols)
    )
    if activate or not Watchlist.objects.filter(is_active=True).exists():
        watchlist_activate(watchlist=watchlist)
    return watchlist


def watchlist_rename(*, watchlist: Watchlist, name: str) -> Watchlist:
    watchlist_check_editable(watchlist=watchlist)
    watchlist.name = (name or "").strip()
    _assert_name_free(watchlist.name, watchlist=watchlist)
    watchlist.full_clean()
    watchlist.save()
    return watchlist


@transaction.atomic
def watchlist_set_symbols(*, watchlist: Watchlist, symbols: Iterable[object]) -> Watchlist:
    watchlist_check_editable(watchlist=watchlist)
    clean_symbols = symbols_normalize(symbols)
    watchlist.items.all().delete()
    WatchlistItem.objects.bulk_create(
        WatchlistItem(watchlist=watchlist, symbol=s, position=i)
        for i, s in enumerate(clean_symbols)
    )
    watchlist.save(update_fields=["updated_at"])
    return watchlist


def watchlist_add_symbol(*, watchlist: Watchlist, symbol: object) -> Watchlist:
    return watchlist_set_symbols(watchlist=watchlist, symbols=[*watchlist.symbols, symbol])


def watchlist_remove_symbol(*, watchlist: Watchlist, symbol: str) -> Watchlist:
    symbols = watchlist.symbols
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


def watchlist_get_active() -> Watchlist | None:
    return Watchlist.objects.filter(is_active=True).prefetch_related("items").first()
