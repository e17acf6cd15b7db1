"""Watchlist items of every instrument type (DESIGN §7.1) through every entry point: the
services, the page (create box, add box, as-you-type reading), the admin and the CLI. The
same five items are accepted everywhere and the same bad items are refused everywhere with
the parser's one sentence naming the item."""

from __future__ import annotations

import html
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from engine.core.instruments import Instrument, ItemError, parse_item
from tests.factories import logged_in_client, make_watchlist
from watchlists import services
from watchlists.models import Watchlist, WatchlistItem

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
FIVE = ["ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE", "AAPL"]
FIVE_INSTRUMENTS = [
    Instrument("ES", "FUT", "CME", ""),
    Instrument("EUR", "CASH", "IDEALPRO", "USD"),
    Instrument("SAP", "STK", "IBIS", "EUR"),
    Instrument("SPX", "IND", "CBOE", ""),
    Instrument("AAPL", "STK", "SMART", "USD"),
]
# Each bad item and the sentence every entry point shows for it (the parser's, verbatim).
BAD = {
    "unknown type": (
        "ES:FOO:CME",
        "“ES:FOO:CME”: “FOO” is not an instrument type; use STK, FUT, CASH, IND or CRYPTO.",
    ),
    "FX without a pair": (
        "EUR:CASH",
        "“EUR:CASH”: an FX item names its pair, such as EURUSD:CASH or USDJPY:CASH (base and "
        "quote currency).",
    ),
    "future without exchange": (
        "ES:FUT",
        "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME.",
    ),
    "index without exchange": (
        "spx:ind",
        "“SPX:IND”: an index needs its exchange, such as SPX:IND:CBOE.",
    ),
    "bad currency": (
        "SAP:STK:IBIS:EUX",
        "“SAP:STK:IBIS:EUX”: “EUX” is not a currency IB trades; use a three-letter code such "
        "as USD, EUR, GBP or JPY.",
    ),
    "NUL byte": (
        "AA\x00PL",
        "“AA\\x00PL” is not a valid symbol: use letters, digits, '.' or a space.",
    ),
    "5000 characters": (
        "X" * 5000,
        "“XXXXXXXXXXXXXXXX… (5000 characters)” is too long: an item has at most 40 characters.",
    ),
    "superscript two": ("²", "“²” is not a valid symbol: use letters, digits, '.' or a space."),
}
BAD_IDS = list(BAD)
BAD_CASES = list(BAD.values())


def page_text(resp) -> str:
    return html.unescape(resp.content.decode())


def slot(page: str, slot_id: str) -> str:
    match = re.search(rf'<p id="{re.escape(slot_id)}"[^>]*>(.*?)</p>', page, re.S)
    assert match, f"no slot {slot_id}"
    return match[1].strip()


def test_the_sentences_are_the_parsers():
    for raw, sentence in BAD_CASES:
        with pytest.raises(ItemError) as info:
            parse_item(raw)
        assert str(info.value) == sentence


# Services


def test_the_five_instrument_types_are_stored_as_fields_and_shown_as_text():
    wl = make_watchlist(name="Mixed", symbols=FIVE)
    assert wl.symbols == FIVE
    assert wl.instruments == FIVE_INSTRUMENTS
    rows = list(
        WatchlistItem.objects.filter(watchlist=wl).values_list(
            "text", "symbol", "sec_type", "exchange", "currency", "position"
        )
    )
    assert rows == [
        ("ES:FUT:CME", "ES", "FUT", "CME", "", 0),
        ("EURUSD:CASH", "EUR", "CASH", "IDEALPRO", "USD", 1),
        ("SAP:STK:IBIS:EUR", "SAP", "STK", "IBIS", "EUR", 2),
        ("SPX:IND:CBOE", "SPX", "IND", "CBOE", "", 3),
        ("AAPL", "AAPL", "STK", "SMART", "USD", 4),
    ]
    assert [str(item) for item in wl.items.all()] == FIVE
    assert [i.has_volume for i in wl.instruments] == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("raw", "text"),
    [("es:fut:cme", "ES:FUT:CME"), (" es : fut : cme ", "ES:FUT:CME"),
     ("EUR.USD:CASH", "EURUSD:CASH"), ("eur/usd:cash:idealpro", "EURUSD:CASH"),
     ("AAPL:STK", "AAPL"), ("aapl:stk:smart:usd", "AAPL"), ("brk.b", "BRK B"),
     ("BRK.B:STK:SMART:USD", "BRK B"), ("btc:crypto", "BTC:CRYPTO"),
     ("MNQ:FUT:CME", "MNQ:FUT:CME"), ("sap:stk:ibis", "SAP:STK:IBIS")],
)  # fmt: skip
def test_an_item_has_one_canonical_text(raw, text):
    assert services.symbol_normalize(raw) == text
    assert services.item_parse(raw).text == text


def test_the_same_item_written_two_ways_is_in_a_list_once():
    with pytest.raises(ValidationError) as info:
        make_watchlist(name="Twice", symbols=["AAPL", "aapl:stk:smart:usd"])
    assert info.value.message_dict["symbols"] == ["AAPL is already in the watchlist."]
    wl = make_watchlist(name="Fx", symbols=["EURUSD:CASH"])
    with pytest.raises(ValidationError, match="EURUSD:CASH is already in the watchlist"):
        services.watchlist_add_symbol(watchlist=wl, symbol="eur.usd:cash")
    # The same root as a stock and as a future are two items.
    services.watchlist_add_symbol(watchlist=wl, symbol="ES:FUT:CME")
    services.watchlist_add_symbol(watchlist=wl, symbol="ES")
    assert wl.symbols == ["EURUSD:CASH", "ES:FUT:CME", "ES"]


@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_services_refuse_a_bad_item_with_its_sentence(raw, sentence):
    with pytest.raises(ValidationError) as info:
        services.item_parse(raw)
    assert info.value.message_dict == {"symbols": [sentence]}
    wl = make_watchlist(name="Held", symbols=["AAPL"])
    with pytest.raises(ValidationError) as info:
        services.watchlist_add_symbol(watchlist=wl, symbol=raw)
    assert info.value.message_dict == {"symbols": [sentence]}
    with pytest.raises(ValidationError) as info:
        services.watchlist_create(name="Refused", symbols=["AAPL", raw])
    assert info.value.message_dict == {"symbols": [sentence]}
    assert wl.symbols == ["AAPL"] and not Watchlist.objects.filter(name="Refused").exists()


def test_five_items_of_any_type_fill_a_list():
    wl = make_watchlist(name="Full", symbols=FIVE)
    with pytest.raises(ValidationError) as info:
        services.watchlist_add_symbol(watchlist=wl, symbol="NQ:FUT:CME")
    assert info.value.message_dict["symbols"] == [
        "A watchlist holds at most 5 symbols; remove one first."
    ]
    with pytest.raises(ValidationError, match="at most 5"):
        services.watchlist_create(name="Six", symbols=[*FIVE, "BTC:CRYPTO"])
    services.watchlist_remove_symbol(watchlist=wl, symbol="es:fut:cme")
    services.watchlist_add_symbol(watchlist=wl, symbol="NQ:FUT:CME")
    assert wl.symbols == ["EURUSD:CASH", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE", "AAPL", "NQ:FUT:CME"]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("ES:FUT:CME, EURUSD:CASH AAPL", ["ES:FUT:CME", "EURUSD:CASH", "AAPL"]),
        ("ES:FUT:CME EURUSD:CASH", ["ES:FUT:CME", "EURUSD:CASH"]),
        ("SAP : STK : IBIS : EUR", ["SAP:STK:IBIS:EUR"]),
        ("SAP : STK : IBIS : EUR msft", ["SAP:STK:IBIS:EUR", "msft"]),
        ("spx:ind:cboe;btc:crypto\nBRK B", ["spx:ind:cboe", "btc:crypto", "BRK B"]),
        ("ES:FUT", ["ES:FUT"]),
    ],
)
def test_the_box_splits_items_with_colons(text, pieces):
    assert services.symbols_split(text) == pieces


# The page


def test_the_page_creates_a_list_of_the_five_types_and_shows_their_texts():
    client = logged_in_client()
    resp = client.post(
        reverse("watchlists:create"), {"name": "Mixed", "symbols": ", ".join(FIVE).lower()}
    )
    assert resp.status_code == 302, page_text(resp)
    wl = Watchlist.objects.get(name="Mixed")
    assert wl.symbols == FIVE
    page = page_text(client.get(reverse("watchlists:list")))
    card = re.search(rf'<article id="wl-{wl.pk}".*?</article>', page, re.S)[0]
    assert re.findall(r'data-symbol="([^"]+)"', card) == FIVE
    assert 'title="ES:FUT:CME (future on CME, front month)"' in card
    assert 'title="SPX:IND:CBOE (index on CBOE, no volume)"' in card
    help_box = re.search(r'<div id="items-help".*?</div>', page, re.S)[0]
    for example in ["AAPL", "ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE"]:
        assert f"<li>{example} " in help_box
    assert "SYMBOL:TYPE[:EXCHANGE[:CURRENCY]]" in help_box


def test_the_box_says_how_items_read():
    client = logged_in_client()
    fragment = page_text(
        client.get(
            reverse("watchlists:understand"),
            {"symbols": "es:fut:cme, eur.usd:cash aapl, sap:stk:ibis:eur"},
            headers=HX,
        )
    )
    assert (
        "Reads as 4 symbols: ES:FUT:CME (future on CME, front month), EURUSD:CASH (FX pair "
        "EUR/USD on IDEALPRO, no volume), AAPL, SAP:STK:IBIS:EUR (stock on IBIS in EUR)."
    ) in fragment
    fragment = page_text(client.get(reverse("watchlists:understand"), {"symbols": "ES:FUT, ²"}))
    assert BAD["future without exchange"][1] in fragment
    assert BAD["superscript two"][1] in fragment


def test_the_box_shows_a_few_problems_not_thousands():
    client = logged_in_client()
    fragment = page_text(client.get(reverse("watchlists:understand"), {"symbols": "$," * 3000}))
    assert fragment.count("is not a valid symbol") == 5
    assert "… and 2995 more problems." in fragment


@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_the_page_refuses_a_bad_item_with_its_sentence(raw, sentence):
    client = logged_in_client()
    wl = make_watchlist(name="Held", symbols=["AAPL"])
    resp = client.post(reverse("watchlists:symbol-add", args=[wl.pk]), {"symbol": raw}, headers=HX)
    assert slot(page_text(resp), f"wl-{wl.pk}-err-symbols") == sentence
    resp = client.post(reverse("watchlists:create"), {"name": "Refused", "symbols": f"AAPL, {raw}"})
    assert resp.status_code == 400
    assert slot(page_text(resp), "err-create-symbols") == sentence
    assert wl.symbols == ["AAPL"] and not Watchlist.objects.filter(name="Refused").exists()


def test_the_page_adds_and_removes_items_of_every_type():
    client = logged_in_client()
    wl = make_watchlist(name="Grow", symbols=[])
    for raw in ["es:fut:cme", "EUR.USD:CASH", "sap:stk:ibis:eur", "spx:ind:cboe", "aapl"]:
        resp = client.post(reverse("watchlists:symbol-add", args=[wl.pk]), {"symbol": raw})
        assert resp.status_code == 302
    assert wl.symbols == FIVE
    resp = client.post(
        reverse("watchlists:symbol-add", args=[wl.pk]), {"symbol": "NQ:FUT:CME"}, headers=HX
    )
    assert slot(page_text(resp), f"wl-{wl.pk}-err-symbols") == (
        "A watchlist holds at most 5 symbols; remove one first."
    )
    resp = client.post(
        reverse("watchlists:symbol-remove", args=[wl.pk]), {"symbol": "EURUSD:CASH"}, headers=HX
    )
    assert "Removed EURUSD:CASH from “Grow”." in page_text(resp)
    assert wl.symbols == ["ES:FUT:CME", "SAP:STK:IBIS:EUR", "SPX:IND:CBOE", "AAPL"]


# Admin


def inline_data(items):
    data = {
        "items-TOTAL_FORMS": str(len(items)),
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "5",
    }
    for i, item in enumerate(items):
        data[f"items-{i}-text"] = item
        data[f"items-{i}-position"] = str(i)
    return data


def test_the_admin_takes_the_five_types(admin_client):
    resp = admin_client.post(
        "/admin/watchlists/watchlist/add/",
        {"name": "Admin mixed", **inline_data([s.lower() for s in FIVE])},
    )
    assert resp.status_code == 302, page_text(resp)
    wl = Watchlist.objects.get(name="Admin mixed")
    assert wl.symbols == FIVE and wl.instruments == FIVE_INSTRUMENTS
    change = page_text(admin_client.get(f"/admin/watchlists/watchlist/{wl.pk}/change/"))
    assert 'value="SAP:STK:IBIS:EUR"' in change
    assert "ES:FUT:CME (future on CME, front month)" in change
    listing = page_text(admin_client.get("/admin/watchlists/watchlist/"))
    assert "ES:FUT:CME EURUSD:CASH SAP:STK:IBIS:EUR SPX:IND:CBOE AAPL" in listing


@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_the_admin_refuses_a_bad_item_with_its_sentence(admin_client, raw, sentence):
    resp = admin_client.post(
        "/admin/watchlists/watchlist/add/", {"name": "Refused", **inline_data(["AAPL", raw])}
    )
    assert resp.status_code == 200
    assert sentence in page_text(resp)
    assert not Watchlist.objects.filter(name="Refused").exists()


def test_the_admin_keeps_five_items_and_one_of_each(admin_client):
    resp = admin_client.post(
        "/admin/watchlists/watchlist/add/",
        {"name": "Six", **inline_data([*FIVE, "BTC:CRYPTO"])},
    )
    assert "at most 5" in page_text(resp)
    resp = admin_client.post(
        "/admin/watchlists/watchlist/add/",
        {"name": "Twice", **inline_data(["EURUSD:CASH", "eur.usd:cash"])},
    )
    assert "EURUSD:CASH is listed twice." in page_text(resp)
    assert not Watchlist.objects.filter(name__in=["Six", "Twice"]).exists()


# CLI


def test_the_cli_takes_the_five_types(capsys):
    call_command("watchlist", "create", "Cli", "es:fut:cme, eurusd:cash", "SAP:STK:IBIS:EUR",
                 "SPX:IND:CBOE AAPL")  # fmt: skip
    assert capsys.readouterr().out.strip() == (
        "Created watchlist Cli: ES:FUT:CME EURUSD:CASH SAP:STK:IBIS:EUR SPX:IND:CBOE AAPL"
    )
    assert Watchlist.objects.get(name="Cli").instruments == FIVE_INSTRUMENTS
    with pytest.raises(CommandError) as info:
        call_command("watchlist", "create", "Cli6", *FIVE, "BTC:CRYPTO")
    assert str(info.value) == "A watchlist holds at most 5 symbols; remove one first."


@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_the_cli_refuses_a_bad_item_with_its_sentence(raw, sentence):
    with pytest.raises(CommandError) as info:
        call_command("watchlist", "create", "Refused", "AAPL", raw)
    assert str(info.value) == sentence
    assert info.value.returncode == 2
    assert not Watchlist.objects.filter(name="Refused").exists()
