"""The watchlist page through Django's test client: list, create, rename, symbols (htmx and
plain POST), activate, delete, locks while the engine runs, CSRF and login."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Max
from django.test import Client
from django.urls import reverse

from tests.factories import make_running_engine, make_watchlist
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
LIST = "/watchlists/"
FULL = "A watchlist holds at most 5 symbols; remove one first."

TAKEN = "A watchlist named “Default” already exists; choose another name."


@pytest.fixture
def user():
    return get_user_model().objects.create_user("trader", "", "s3cret-pass-123")


@pytest.fixture
def client(user) -> Client:
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def text(resp) -> str:
    return html.unescape(resp.content.decode())


def url(name: str, wl: Watchlist) -> str:
    return reverse(f"watchlists:{name}", args=[wl.pk])


def card(page: str, wl: Watchlist) -> str:
    match = re.search(rf'<article id="wl-{wl.pk}".*?</article>', page, re.S)
    assert match, f"no card for {wl.name}"
    return match[0]


def slot(page: str, slot_id: str) -> str:
    match = re.search(rf'<p id="{re.escape(slot_id)}"[^>]*>(.*?)</p>', page, re.S)
    assert match, f"no slot {slot_id}"
    return match[1].strip()


def disabled_attrs(fragment: str) -> int:
    """How many elements carry the ``disabled`` attribute (not Tailwind's ``disabled:``)."""
    return len(re.findall(r"\sdisabled(?=[\s>])", fragment))


def add_box(fragment: str) -> str:
    return re.search(r'<input id="wl-\d+-symbol"[^>]*>', fragment, re.S)[0]


def symbols_of(wl: Watchlist) -> list[str]:
    return Watchlist.objects.get(pk=wl.pk).symbols


# The page


def test_list_marks_the_active_watchlist_and_counts_symbols(client):
    seeded = Watchlist.objects.get(is_active=True)
    tech = make_watchlist(name="Tech", symbols=["AMD", "INTC"])
    resp = client.get(LIST)
    assert resp.status_code == 200
    page = text(resp)
    active_card, tech_card = card(page, seeded), card(page, tech)
    assert 'data-testid="active-badge"' in active_card
    assert 'data-testid="active-badge"' not in tech_card
    assert "2 of 5 symbols" in tech_card
    assert re.findall(r'data-symbol="([^"]+)"', tech_card) == ["AMD", "INTC"]
    # Only inactive lists offer "Make active"; nothing is locked while the engine is idle.
    assert "Make Tech the active watchlist" in tech_card
    assert f"Make {seeded.name} the active watchlist" not in active_card
    assert disabled_attrs(tech_card) == 0
    assert disabled_attrs(active_card) == 0
    # The active list comes first.
    assert page.index(f'id="wl-{seeded.pk}"') < page.index(f'id="wl-{tech.pk}"')


def test_empty_state_and_no_active_warning(client):
    Watchlist.objects.all().delete()
    page = text(client.get(LIST))
    assert 'data-testid="empty-state"' in page
    assert "No watchlists yet." in page
    make_watchlist(name="Idle")
    Watchlist.objects.update(is_active=False)
    page = text(client.get(LIST))
    assert "No watchlist is active: make one active before starting the engine." in page


def test_login_is_required_for_the_page_and_every_action():
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    anon = Client(HTTP_HOST="localhost")
    resp = anon.get(LIST)
    assert resp.status_code == 302
    assert resp["Location"].startswith("/accounts/login/?next=/watchlists/")
    for name in ("symbol-add", "symbol-remove", "rename", "activate", "delete"):
        resp = anon.post(url(name, wl), {"symbol": "MSFT", "name": "X"})
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"], name
    resp = anon.post(reverse("watchlists:create"), {"name": "Sneaky"})
    assert resp.status_code == 302
    wl.refresh_from_db()
    assert wl.name == "Tech" and wl.symbols == ["AAPL"] and not wl.is_active
    assert not Watchlist.objects.filter(name="Sneaky").exists()


def test_csrf_is_enforced_and_the_htmx_header_token_is_accepted(user):
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    strict = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    strict.force_login(user)
    resp = strict.post(url("symbol-add", wl), {"symbol": "MSFT"}, headers=HX)
    assert resp.status_code == 403
    assert symbols_of(wl) == ["AAPL"]
    for name in ("symbol-remove", "rename", "activate", "delete"):
        assert strict.post(url(name, wl), {"symbol": "AAPL", "name": "X"}).status_code == 403
    assert strict.post(reverse("watchlists:create"), {"name": "X"}).status_code == 403
    # The page renders the token that base.html hands to htmx in the X-CSRFToken header.
    page = strict.get(LIST).content.decode()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]
    resp = strict.post(
        url("symbol-add", wl), {"symbol": "MSFT"}, headers={**HX, "X-CSRFToken": token}
    )
    assert resp.status_code == 200
    assert symbols_of(wl) == ["AAPL", "MSFT"]


def test_actions_only_accept_post_and_unknown_ids_are_404(client):
    wl = make_watchlist(name="Tech")
    assert client.get(url("symbol-add", wl)).status_code == 405
    assert client.get(url("rename", wl)).status_code == 405
    assert client.get(url("activate", wl)).status_code == 405
    assert client.get(reverse("watchlists:create")).status_code == 405
    assert client.post(LIST).status_code == 405
    missing = Watchlist.objects.aggregate(m=Max("pk"))["m"] + 1000
    resp = client.post(
        reverse("watchlists:symbol-add", args=[missing]), {"symbol": "A"}, headers=HX
    )
    assert resp.status_code == 404
    assert client.get(reverse("watchlists:delete", args=[missing])).status_code == 404


# Create


def test_create_with_symbols_then_it_is_listed(client):
    resp = client.post(reverse("watchlists:create"), {"name": " Semis ", "symbols": "nvda, amd"})
    wl = Watchlist.objects.get(name="Semis")
    assert resp.status_code == 302
    assert resp["Location"] == f"/watchlists/#wl-{wl.pk}"
    assert wl.symbols == ["NVDA", "AMD"]
    assert not wl.is_active  # the seeded list stays active unless asked
    page = text(client.get(LIST))
    assert "Created the watchlist “Semis”." in page
    assert re.findall(r'data-symbol="([^"]+)"', card(page, wl)) == ["NVDA", "AMD"]


def test_create_and_activate(client):
    client.post(reverse("watchlists:create"), {"name": "Semis", "symbols": "", "activate": "on"})
    assert list(Watchlist.objects.filter(is_active=True).values_list("name", flat=True)) == [
        "Semis"
    ]


@pytest.mark.parametrize(
    ("data", "slot_id", "sentence"),
    [
        ({"name": "  "}, "err-create-name", "Give the watchlist a name."),
        ({"name": "Default"}, "err-create-name", TAKEN),
        ({"name": "Big", "symbols": "A, B, C, D, E, F"}, "err-create-symbols", FULL),
        ({"name": "Dup", "symbols": "AAPL, aapl"}, "err-create-symbols",
         "AAPL is already in the watchlist."),
        ({"name": "Bad", "symbols": "AAPL$"}, "err-create-symbols",
         "“AAPL$” is not a valid symbol: use letters, digits, '.' or a space."),
    ],
)  # fmt: skip
def test_create_refusals_are_inline_sentences(client, data, slot_id, sentence):
    before = Watchlist.objects.count()
    resp = client.post(reverse("watchlists:create"), data)
    assert resp.status_code == 400
    assert slot(text(resp), slot_id) == sentence
    assert Watchlist.objects.count() == before
    # What was typed stays in the form.
    assert f'value="{data["name"]}"' in resp.content.decode()


# Symbols (htmx)


def test_add_symbol_with_htmx_returns_the_card(client):
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    resp = client.post(url("symbol-add", wl), {"symbol": " msft "}, headers=HX)
    assert resp.status_code == 200
    fragment = text(resp)
    assert fragment.lstrip().startswith(f'<article id="wl-{wl.pk}"')
    assert "<html" not in fragment
    assert re.findall(r'data-symbol="([^"]+)"', fragment) == ["AAPL", "MSFT"]
    assert "Added MSFT to “Tech”." in fragment
    assert slot(fragment, f"wl-{wl.pk}-err-symbols") == ""
    assert symbols_of(wl) == ["AAPL", "MSFT"]


def test_sixth_symbol_is_refused_inline(client):
    wl = make_watchlist(name="Five", symbols=["A", "B", "C", "D", "E"])
    resp = client.post(url("symbol-add", wl), {"symbol": "F"}, headers=HX)
    assert resp.status_code == 200
    fragment = text(resp)
    assert slot(fragment, f"wl-{wl.pk}-err-symbols") == FULL
    assert 'aria-invalid="true"' in fragment
    assert 'value="F"' in fragment  # the refused symbol stays in the box
    assert re.findall(r'data-symbol="([^"]+)"', fragment) == ["A", "B", "C", "D", "E"]
    assert symbols_of(wl) == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize(
    ("symbol", "sentence"),
    [
        ("aapl", "AAPL is already in the watchlist."),
        ("AAPL$", "“AAPL$” is not a valid symbol: use letters, digits, '.' or a space."),
        ("ABCDEFGHIJKLM", "“ABCDEFGHIJKLM” is too long: a symbol has 1–12 characters."),
        ("   ", "Type a symbol to add, e.g. AAPL or ES:FUT:CME."),
    ],
)
def test_duplicate_and_bad_symbols_are_refused_inline(client, symbol, sentence):
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    resp = client.post(url("symbol-add", wl), {"symbol": symbol}, headers=HX)
    assert resp.status_code == 200
    assert slot(text(resp), f"wl-{wl.pk}-err-symbols") == sentence
    assert symbols_of(wl) == ["AAPL"]


def test_remove_symbol_with_htmx(client):
    wl = make_watchlist(name="Tech", symbols=["AAPL", "MSFT", "BRK B"])
    resp = client.post(url("symbol-remove", wl), {"symbol": "BRK B"}, headers=HX)
    assert resp.status_code == 200
    fragment = text(resp)
    assert re.findall(r'data-symbol="([^"]+)"', fragment) == ["AAPL", "MSFT"]
    assert "Removed BRK B from “Tech”." in fragment
    assert symbols_of(wl) == ["AAPL", "MSFT"]
    resp = client.post(url("symbol-remove", wl), {"symbol": "TSLA"}, headers=HX)
    assert slot(text(resp), f"wl-{wl.pk}-err-symbols") == "TSLA is not in the watchlist."
    assert symbols_of(wl) == ["AAPL", "MSFT"]


def test_symbols_without_javascript_redirect_or_show_the_page(client):
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    resp = client.post(url("symbol-add", wl), {"symbol": "MSFT"})
    assert resp.status_code == 302 and resp["Location"] == f"/watchlists/#wl-{wl.pk}"
    assert symbols_of(wl) == ["AAPL", "MSFT"]
    resp = client.post(url("symbol-add", wl), {"symbol": "msft"})
    assert resp.status_code == 400
    page = text(resp)
    assert "<html" in page
    assert slot(page, f"wl-{wl.pk}-err-symbols") == "MSFT is already in the watchlist."
    resp = client.post(url("symbol-remove", wl), {"symbol": "AAPL"}, follow=True)
    assert "Removed AAPL from “Tech”." in text(resp)
    assert symbols_of(wl) == ["MSFT"]


# Rename, activate, delete


def test_rename_with_htmx_and_refusals(client):
    wl = make_watchlist(name="Tech")
    resp = client.post(url("rename", wl), {"name": "Big tech"}, headers=HX)
    assert resp.status_code == 200
    assert re.search(rf'<h2 id="wl-{wl.pk}-name"[^>]*>Big tech</h2>', resp.content.decode())
    wl.refresh_from_db()
    assert wl.name == "Big tech"
    resp = client.post(url("rename", wl), {"name": "Default"}, headers=HX)
    fragment = text(resp)
    assert (
        slot(fragment, f"wl-{wl.pk}-err-name")
        == "A watchlist named “Default” already exists; choose another name."
    )
    assert '<details class="group relative" open>' in fragment  # the rename box stays open
    assert 'value="Default"' in fragment
    resp = client.post(url("rename", wl), {"name": ""}, headers=HX)
    assert slot(text(resp), f"wl-{wl.pk}-err-name") == "Give the watchlist a name."
    wl.refresh_from_db()
    assert wl.name == "Big tech"


def test_rename_without_javascript(client):
    wl = make_watchlist(name="Tech")
    resp = client.post(url("rename", wl), {"name": "Chips"}, follow=True)
    assert "Renamed “Tech” to “Chips”." in text(resp)
    resp = client.post(url("rename", wl), {"name": "x" * 61})
    assert resp.status_code == 400
    assert slot(text(resp), f"wl-{wl.pk}-err-name") == (
        "A watchlist name has at most 60 characters."
    )


def test_activate_switches_the_active_watchlist(client):
    seeded = Watchlist.objects.get(is_active=True)
    tech = make_watchlist(name="Tech")
    resp = client.post(url("activate", tech), follow=True)
    assert "“Tech” is now the active watchlist: the engine scans it." in text(resp)
    assert list(Watchlist.objects.filter(is_active=True)) == [tech]
    assert 'data-testid="active-badge"' in card(text(resp), tech)
    assert 'data-testid="active-badge"' not in card(text(resp), seeded)


def test_delete_asks_first_then_deletes(client):
    wl = make_watchlist(name="Old", symbols=["IBM"])
    resp = client.get(url("delete", wl))
    assert resp.status_code == 200
    page = text(resp)
    assert "Delete the watchlist “Old”?" in page and "IBM" in page
    assert Watchlist.objects.filter(pk=wl.pk).exists()
    resp = client.post(url("delete", wl), follow=True)
    assert "Deleted the watchlist “Old”." in text(resp)
    assert not Watchlist.objects.filter(pk=wl.pk).exists()


def test_deleting_the_active_watchlist_warns_first(client):
    seeded = Watchlist.objects.get(is_active=True)
    page = text(client.get(url("delete", seeded)))
    assert "It is the active watchlist: make another one active" in page


# Locked while the engine runs


def test_everything_is_locked_while_the_engine_runs_with_the_watchlist(client):
    seeded = Watchlist.objects.get(is_active=True)
    before = list(seeded.symbols)
    other = make_watchlist(name="Other", symbols=["IBM"])
    make_running_engine(watchlist=seeded)
    lock = f"The engine is running with the watchlist “{seeded.name}”: stop the engine before"

    page = text(client.get(LIST))
    locked = card(page, seeded)
    assert f"{lock} changing it." in locked
    assert "Running · locked" in locked
    # Add box, Add, every ✕, Rename and Delete are disabled, each with the reason.
    assert disabled_attrs(add_box(locked)) == 1
    assert locked.count(f'disabled title="{lock} changing it."') == 3  # Add, Rename, Delete
    assert disabled_attrs(locked) == len(before) + 4  # + every ✕
    # The other list stays editable, but can't become active while the engine runs.
    other_card = card(page, other)
    assert "Running · locked" not in other_card
    assert disabled_attrs(add_box(other_card)) == 0
    assert disabled_attrs(other_card) == 1  # only "Make active"
    assert (
        'disabled title="The engine is running: stop it before switching the active watchlist."'
        in other_card
    )

    resp = client.post(url("symbol-add", seeded), {"symbol": "IBM"}, headers=HX)
    assert slot(text(resp), f"wl-{seeded.pk}-err-symbols") == f"{lock} changing it."
    resp = client.post(url("symbol-remove", seeded), {"symbol": before[0]}, headers=HX)
    assert slot(text(resp), f"wl-{seeded.pk}-err-symbols") == f"{lock} changing it."
    resp = client.post(url("rename", seeded), {"name": "New"}, headers=HX)
    assert slot(text(resp), f"wl-{seeded.pk}-err-name") == f"{lock} changing it."
    resp = client.get(url("delete", seeded))
    assert f"{lock} deleting it." in text(resp)
    resp = client.post(url("delete", seeded))
    assert resp.status_code == 409
    assert f"{lock} deleting it." in text(resp)
    resp = client.post(url("activate", other), follow=True)
    assert "The engine is running: stop it before switching the active watchlist." in text(resp)

    seeded.refresh_from_db()
    assert seeded.is_active and seeded.name == "Default" and seeded.symbols == before
    other.refresh_from_db()
    assert not other.is_active
    # Lists the run doesn't hold can still change.
    resp = client.post(url("symbol-add", other), {"symbol": "AMD"}, headers=HX)
    assert symbols_of(other) == ["IBM", "AMD"]


# What the box was read as, said before saving


def test_the_box_says_how_it_reads_as_you_type(client):
    resp = client.get(reverse("watchlists:understand"), {"symbols": "aapl msft, brk.b"}, headers=HX)
    fragment = text(resp)
    assert "<html" not in fragment
    assert "Reads as 3 symbols: AAPL, MSFT, BRK B." in fragment
    fragment = text(client.get(reverse("watchlists:understand"), {"symbols": "BRK B, brk.b"}))
    assert "Reads as 1 symbol: BRK B." in fragment
    assert "BRK B is typed twice" in fragment
    fragment = text(client.get(reverse("watchlists:understand"), {"symbols": "AAPL IBM"}))
    assert "“AAPL IBM” is read as one symbol" in fragment
    assert "if you meant AAPL and IBM, put a comma between them." in fragment


def test_space_separated_symbols_are_saved_as_separate_symbols(client):
    resp = client.post(reverse("watchlists:create"), {"name": "Spaced", "symbols": "AAPL MSFT"})
    assert resp.status_code == 302
    assert Watchlist.objects.get(name="Spaced").symbols == ["AAPL", "MSFT"]


def test_an_entry_that_may_be_two_symbols_is_saved_only_once_its_reading_was_shown(client):
    data = {"name": "Maybe", "symbols": "AAPL IBM"}
    resp = client.post(reverse("watchlists:create"), data)
    assert resp.status_code == 400
    page = text(resp)
    assert slot(page, "err-create-symbols") == (
        "Check how the symbols were read (below), then press Create watchlist again."
    )
    assert "Reads as 1 symbol: AAPL IBM." in page
    assert not Watchlist.objects.filter(name="Maybe").exists()
    seen = re.search(r'name="understood" value="([^"]*)"', page)[1]
    resp = client.post(reverse("watchlists:create"), {**data, "understood": seen})
    assert resp.status_code == 302
    assert Watchlist.objects.get(name="Maybe").symbols == ["AAPL IBM"]
    # A class share reads as one symbol without a doubt.
    resp = client.post(reverse("watchlists:create"), {"name": "Berkshire", "symbols": "BRK B"})
    assert resp.status_code == 302


def test_the_add_box_says_how_a_spaced_entry_reads_before_adding_it(client):
    wl = make_watchlist(name="Tech", symbols=["AAPL"])
    fragment = text(client.post(url("symbol-add", wl), {"symbol": "msft ibm"}, headers=HX))
    assert "“MSFT IBM” is read as one symbol" in slot(fragment, f"wl-{wl.pk}-err-symbols")
    assert symbols_of(wl) == ["AAPL"]
    seen = re.search(r'name="understood" value="([^"]*)"', fragment)[1]
    client.post(url("symbol-add", wl), {"symbol": "msft ibm", "understood": seen}, headers=HX)
    assert symbols_of(wl) == ["AAPL", "MSFT IBM"]
    client.post(url("symbol-add", wl), {"symbol": "brk.b"}, headers=HX)
    assert symbols_of(wl) == ["AAPL", "MSFT IBM", "BRK B"]
    fragment = text(client.post(url("symbol-add", wl), {"symbol": "BRK B"}, headers=HX))
    assert slot(fragment, f"wl-{wl.pk}-err-symbols") == "BRK B is already in the watchlist."
