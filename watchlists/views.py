"""Watchlist page: list, create, rename, delete, add/remove items (htmx), activate.

An item is ``SYMBOL`` or ``SYMBOL:TYPE[:EXCHANGE[:CURRENCY]]`` (DESIGN §7.1); the services
read it and their sentences are shown as they are."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.services import engine_state_get, engine_stopped_problem
from scalpsite.ui import is_htmx
from watchlists.forms import (
    MAX_BOX_CHARS,
    SymbolForm,
    Understood,
    WatchlistCreateForm,
    WatchlistNameForm,
    item_described,
    understand_symbols,
)
from watchlists.models import MAX_SYMBOLS, Watchlist
from watchlists.services import (
    symbol_normalize,
    watchlist_activate,
    watchlist_add_symbol,
    watchlist_check_editable,
    watchlist_create,
    watchlist_delete,
    watchlist_remove_symbol,
    watchlist_rename,
)

TYPED_KEPT = 100  # characters of a refused entry kept in the add box

LIST = "watchlists/list.html"
ACTIVATE_ACTION = "switching the active watchlist"


@dataclass
class Card:
    """One watchlist as the page shows it, with what the last action left behind."""

    watchlist: Watchlist
    lock: str = ""  # the service's sentence when a live run holds this watchlist
    errors: dict[str, str] = field(default_factory=dict)  # slot ("symbols" | "name") -> sentence
    symbol_value: str = ""  # kept in the add box after a refusal
    seen_value: str = ""  # an entry whose reading was shown: the next Add saves it
    name_value: str = ""
    rename_open: bool = False
    notice: str = ""  # "Added NVDA." after an htmx change (read out by screen readers)
    focus: bool = False

    @property
    def symbols(self) -> list[str]:
        return self.watchlist.symbols

    @property
    def items(self) -> list[tuple[str, str]]:
        """(text, how it reads) per item: ``("ES:FUT:CME", "ES:FUT:CME (future on CME, …)")``."""
        return [(item.text, item_described(item.instrument)) for item in self.watchlist.items.all()]

    @property
    def is_full(self) -> bool:
        return len(self.symbols) >= MAX_SYMBOLS


def _sentences(err: ValidationError) -> dict[str, str]:
    """A service's ValidationError as {field or "__all__": sentence}."""
    if hasattr(err, "error_dict"):
        return {name: " ".join(msgs) for name, msgs in err.message_dict.items()}
    return {"__all__": " ".join(err.messages)}


def _fetch(pk: int) -> Watchlist:
    return get_object_or_404(Watchlist.objects.prefetch_related("items"), pk=pk)


def _card(watchlist: Watchlist, **extra) -> Card:
    card = Card(watchlist=watchlist, **extra)
    try:
        watchlist_check_editable(watchlist=watchlist)
    except ValidationError as err:
        card.lock = " ".join(err.messages)
    return card


def _page_context(
    *, card: Card | None = None, create_form=None, understood: Understood | None = None
) -> dict:
    watchlists = list(Watchlist.objects.prefetch_related("items"))
    cards = [card if card and card.watchlist.pk == w.pk else _card(w) for w in watchlists]
    return {
        "cards": cards,
        "has_active": any(w.is_active for w in watchlists),
        "activate_block": engine_stopped_problem(action=ACTIVATE_ACTION),
        "engine": engine_state_get(),
        "create_form": create_form or WatchlistCreateForm(),
        "understood": understood,
        "max_symbols": MAX_SYMBOLS,
    }


def _card_response(request, card: Card, *, ok_message: str):
    """htmx: the card alone. Without JS: back to the page (or the page with the refusal)."""
    if is_htmx(request):
        context = {
            "card": card,
            "activate_block": engine_stopped_problem(action=ACTIVATE_ACTION),
            "max_symbols": MAX_SYMBOLS,
        }
        return render(request, f"{LIST}#card", context)
    if card.errors:
        return render(request, LIST, _page_context(card=card), status=400)
    messages.success(request, ok_message)
    return redirect(f"{reverse('watchlists:list')}#wl-{card.watchlist.pk}")


@require_GET
def watchlist_list(request):
    return render(request, LIST, _page_context())


@require_GET
def symbols_understood(request):
    """As-you-type: how the new-watchlist box reads (count, symbols, doubts), nothing saved."""
    understood = understand_symbols(request.GET.get("symbols", "")[:MAX_BOX_CHARS])
    return render(request, f"{LIST}#understood", {"understood": understood})


LOOK_FIRST = "Check how the symbols were read (below), then press Create watchlist again."


@require_POST
def watchlist_create_view(request):
    form = WatchlistCreateForm(request.POST)
    understood = understand_symbols(request.POST.get("symbols", "")[:MAX_BOX_CHARS])
    # An entry that may be two symbols is saved only once the trader has seen how it reads.
    if understood.needs_a_look and request.POST.get("understood", "") != understood.text:
        form.is_valid()
        form.add_error("symbols", LOOK_FIRST)
        context = _page_context(create_form=form, understood=understood)
        return render(request, LIST, context, status=400)
    if form.is_valid():
        try:
            watchlist = watchlist_create(
                name=form.cleaned_data["name"],
                symbols=form.cleaned_data["symbols"],
                activate=form.cleaned_data["activate"],
            )
        except ValidationError as err:
            for name, sentence in _sentences(err).items():
                form.add_error(name if name in form.fields else None, sentence)
        else:
            active = " It is the active watchlist." if watchlist.is_active else ""
            messages.success(request, f"Created the watchlist “{watchlist.name}”.{active}")
            return redirect(f"{reverse('watchlists:list')}#wl-{watchlist.pk}")
    return render(request, LIST, _page_context(create_form=form, understood=understood), status=400)


@require_POST
def watchlist_rename_view(request, pk: int):
    watchlist = _fetch(pk)
    old_name = watchlist.name
    form = WatchlistNameForm(request.POST)
    errors: dict[str, str] = {}
    if form.is_valid():
        try:
            watchlist_rename(watchlist=watchlist, name=form.cleaned_data["name"])
        except ValidationError as err:
            errors = _sentences(err)
    else:
        errors = {"name": " ".join(map(str, form.errors["name"]))}
    if errors:
        # The in-memory object may carry the refused name: show the stored one.
        card = _card(_fetch(pk), errors=_name_errors(errors), rename_open=True)
        card.name_value = request.POST.get("name", "")[:60]
        return _card_response(request, card, ok_message="")
    card = _card(_fetch(pk), notice=f"Renamed “{old_name}” to “{watchlist.name}”.")
    return _card_response(request, card, ok_message=card.notice)


def _name_errors(errors: dict[str, str]) -> dict[str, str]:
    """Rename refusals all belong next to the name box (a lock too: it's the rename refused)."""
    return {"name": " ".join(errors.values())}


@require_POST
def symbol_add(request, pk: int):
    watchlist = _fetch(pk)
    form = SymbolForm(request.POST)
    typed = request.POST.get("symbol", "")[:TYPED_KEPT]
    if not form.is_valid():
        card = _card(watchlist, errors={"symbols": " ".join(map(str, form.errors["symbol"]))})
        card.symbol_value, card.focus = typed, True
        return _card_response(request, card, ok_message="")
    understood = understand_symbols(form.cleaned_data["symbol"])
    if understood.needs_a_look and request.POST.get("understood", "") != understood.text:
        card = _card(
            watchlist,
            errors={
                "symbols": f"{understood.warnings[0]} Press Add again to add it as one symbol."
            },
        )
        card.symbol_value, card.seen_value, card.focus = typed, understood.text, True
        return _card_response(request, card, ok_message="")
    try:
        watchlist_add_symbol(watchlist=watchlist, symbol=form.cleaned_data["symbol"])
    except ValidationError as err:
        card = _card(_fetch(pk), errors={"symbols": " ".join(_sentences(err).values())})
        card.symbol_value, card.focus = typed, True
        return _card_response(request, card, ok_message="")
    card = _card(_fetch(pk), focus=True)
    added = card.symbols[-1]
    card.notice = f"Added {added} to “{watchlist.name}”."
    return _card_response(request, card, ok_message=card.notice)


@require_POST
def symbol_remove(request, pk: int):
    watchlist = _fetch(pk)
    form = SymbolForm(request.POST)
    if not form.is_valid():
        card = _card(watchlist, errors={"symbols": "Choose a symbol to remove."})
        return _card_response(request, card, ok_message="")
    try:
        watchlist_remove_symbol(watchlist=watchlist, symbol=form.cleaned_data["symbol"])
    except ValidationError as err:
        card = _card(_fetch(pk), errors={"symbols": " ".join(_sentences(err).values())})
        return _card_response(request, card, ok_message="")
    try:
        removed = symbol_normalize(form.cleaned_data["symbol"])
    except ValidationError:  # a row an upgrade kept as typed (no parser accepts it)
        removed = " ".join(form.cleaned_data["symbol"].split()).upper()
    card = _card(_fetch(pk), focus=True, notice=f"Removed {removed} from “{watchlist.name}”.")
    return _card_response(request, card, ok_message=card.notice)


@require_POST
def watchlist_activate_view(request, pk: int):
    watchlist = _fetch(pk)
    try:
        watchlist_activate(watchlist=watchlist)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
    else:
        messages.success(
            request, f"“{watchlist.name}” is now the active watchlist: the engine scans it."
        )
    return redirect(f"{reverse('watchlists:list')}#wl-{watchlist.pk}")


@require_http_methods(["GET", "POST"])
def watchlist_delete_view(request, pk: int):
    """A confirmation page (works without JavaScript); POST deletes through the service."""
    watchlist = _fetch(pk)
    error = ""
    if request.method == "POST":
        try:
            watchlist_delete(watchlist=watchlist)
        except ValidationError as err:
            error = " ".join(err.messages)
        else:
            messages.success(request, f"Deleted the watchlist “{watchlist.name}”.")
            return redirect("watchlists:list")
    else:
        try:
            watchlist_check_editable(watchlist=watchlist, action="deleting it")
        except ValidationError as err:
            error = " ".join(err.messages)
    status = 409 if error and request.method == "POST" else 200
    return render(
        request, "watchlists/delete.html", {"watchlist": watchlist, "error": error}, status=status
    )
