"""Every change to watchlists goes through these functions."""

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from engine.core.inputs import clip
from engine.services import engine_assert_stopped, engine_assert_unlocked, engine_state_get
from watchlists.models import MAX_SYMBOLS, Watchlist, WatchlistItem

# IB's form: a root, then optionally one space and a class or series suffix (BRK B, BAC PRL).
# A dot is read as that space (BRK.B is BRK B), so one list can't hold both spellings.
SYMBOL_RE = re.compile(r"^[A-Z0-9]+( [A-Z0-9]{1,3})?$")
MAX_SYMBOL_LENGTH = 12
_BOX_SEPARATORS = re.compile(r"[,;\r\n]+")


def _shown(text: str) -> str:
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return clip(text, keep=16)


def symbol_normalize(raw: object) -> str:
    """One ticker in IB's form, or ValidationError on ``symbols`` with a sentence.

    The one symbol validator of every entry point (pages, admin, CLI, the csv feed, the
    signal socket's filter): upper-cased, trimmed, 1–12 letters and digits with optionally
    one class suffix of 1–3 after a space or a dot, stored with a space (``brk.b`` → ``BRK B``).
    """
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise ValidationError({"symbols": "A symbol is text, such as AAPL or BRK B."})
    symbol = " ".join(raw.split()).upper()
    if not symbol:
        raise ValidationError({"symbols": "A symbol can't be empty."})
    words = symbol.split(" ")
    if "." in symbol and len(words) == 1:
        root, _, suffix = symbol.partition(".")
        symbol = f"{root} {suffix}"
    if SYMBOL_RE.match(symbol) and len(symbol) <= MAX_SYMBOL_LENGTH:
        return symbol
    if len(words) > 1 and all(re.fullmatch(r"[A-Z0-9]+(\.[A-Z0-9]+)?", w) for w in words):
        raise ValidationError(
            {
                "symbols": f"“{_shown(symbol)}” looks like {len(words)} symbols: separate "
                "symbols with commas (a class share is written BRK B or BRK.B)."
            }
        )
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise ValidationError(
            {"symbols": f"“{_shown(symbol)}” is too long: a symbol has 1–12 characters."}
        )
    raise ValidationError(
        {
            "symbols": f"“{_shown(symbol)}” is not a valid symbol: use letters, digits, "
            "'.' or a space."
        }
    )


def symbols_split(text: str) -> list[str]:
    """The symbols typed in one box, as typed (not yet normalised).

    Commas, semicolons and new lines separate symbols. A piece with spaces stays whole when
    it is one symbol (``BRK B``) and is split at the spaces otherwise (``AAPL MSFT``), so a
    ticker typed the IB way and a space-separated list both read as meant. Ambiguous:
    ``AAPL IBM`` is one symbol (IBM could be a series suffix); show the user what was read.
    """
    pieces: list[str] = []
    for part in _BOX_SEPARATORS.split(text or ""):
        part = part.strip()
        if not part:
            continue
        if " " in " ".join(part.split()):
            try:
                symbol_normalize(part)
            except ValidationError:
                pieces.extend(part.split())
                continue
        pieces.append(part)
    return pieces


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
    clean_symbols = symbols_normalize(symbols)
    if activate:
        engine_assert_stopped(action="switching the active watchlist")
    watchlist = Watchlist(name=watchlist_name_clean(name))
    _assert_name_free(watchlist.name)
    watchlist.full_clean()
    watchlist.save()
    WatchlistItem.objects.bulk_create(
        WatchlistItem(watchlist=watchlist, symbol=s, position=i)
        for i, s in enumerate(clean_symbols)
    )
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
