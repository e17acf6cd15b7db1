"""Watchlists through the services: symbols, the 5-symbol limit, one active list, locks."""

import pytest
from django.core.exceptions import ValidationError

from tests.factories import make_running_engine, make_watchlist
from watchlists import services
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db


def test_symbols_are_normalised_and_kept_in_order():
    wl = make_watchlist(symbols=[" aapl ", "brk  b", "msft", "rds.a"])
    assert wl.symbols == ["AAPL", "BRK B", "MSFT", "RDS A"]


def test_sixth_symbol_is_refused_with_a_clear_message():
    wl = make_watchlist(symbols=["A", "B", "C", "D", "E"])
    with pytest.raises(ValidationError) as exc:
        services.watchlist_add_symbol(watchlist=wl, symbol="F")
    assert exc.value.message_dict["symbols"] == [
        "A watchlist holds at most 5 symbols; remove one first."
    ]
    assert wl.symbols == ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize(
    ("symbol", "fragment"),
    [("", "can't be empty"), ("AAPL$", "not a valid symbol"), ("ABCDEFGHIJKLM", "too long"),
     ("-X", "not a valid symbol")],
)  # fmt: skip
def test_bad_symbols_are_refused(symbol, fragment):
    wl = make_watchlist(symbols=["AAPL"])
    with pytest.raises(ValidationError) as exc:
        services.watchlist_add_symbol(watchlist=wl, symbol=symbol)
    assert fragment in exc.value.message_dict["symbols"][0]


def test_duplicates_are_refused():
    wl = make_watchlist(symbols=["AAPL"])
    with pytest.raises(ValidationError, match="AAPL is already in the watchlist"):
        services.watchlist_add_symbol(watchlist=wl, symbol="aapl")


def test_exactly_one_watchlist_is_active():
    seeded = Watchlist.objects.get(is_active=True)
    tech = make_watchlist(name="Tech")
    assert not tech.is_active
    services.watchlist_activate(watchlist=tech)
    assert list(Watchlist.objects.filter(is_active=True)) == [tech]
    seeded.refresh_from_db()
    assert not seeded.is_active


def test_remove_symbol():
    wl = make_watchlist(symbols=["AAPL", "MSFT"])
    services.watchlist_remove_symbol(watchlist=wl, symbol="aapl")
    assert wl.symbols == ["MSFT"]
    with pytest.raises(ValidationError, match="not in the watchlist"):
        services.watchlist_remove_symbol(watchlist=wl, symbol="TSLA")


def test_running_watchlist_is_locked():
    wl = make_watchlist(name="Live", activate=True)
    other = make_watchlist(name="Other")
    make_running_engine(watchlist=wl)
    with pytest.raises(ValidationError, match="stop the engine before changing it"):
        services.watchlist_add_symbol(watchlist=wl, symbol="TSLA")
    with pytest.raises(ValidationError, match="stop the engine before deleting it"):
        services.watchlist_delete(watchlist=wl)
    with pytest.raises(ValidationError, match="switching the active watchlist"):
        services.watchlist_activate(watchlist=other)
    services.watchlist_add_symbol(watchlist=other, symbol="TSLA")
    assert other.symbols == ["AAPL", "MSFT", "TSLA"]


def test_create_with_activate_while_running_creates_nothing():
    held = Watchlist.objects.get(is_active=True)
    make_running_engine(watchlist=held)
    with pytest.raises(ValidationError, match="stop it before switching the active watchlist"):
        services.watchlist_create(name="X", symbols=["AAPL"], activate=True)
    assert not Watchlist.objects.filter(name="X").exists()
    assert Watchlist.objects.get(is_active=True) == held


def test_create_while_running_with_no_active_list_creates_it_inactive():
    held = Watchlist.objects.get(is_active=True)
    make_running_engine(watchlist=held)
    Watchlist.objects.filter(pk=held.pk).update(is_active=False)
    wl = services.watchlist_create(name="X", symbols=["AAPL"])
    assert not wl.is_active and wl.symbols == ["AAPL"]


@pytest.mark.parametrize(
    ("raw", "symbol"),
    [("BRK.B", "BRK B"), ("brk b", "BRK B"), (" Brk  B ", "BRK B"), ("bf.b", "BF B"),
     ("BAC PRL", "BAC PRL"), ("7203", "7203"), ("SPY", "SPY")],
)  # fmt: skip
def test_a_class_share_has_one_form_ibs(raw, symbol):
    assert services.symbol_normalize(raw) == symbol


def test_brk_b_and_brk_dot_b_are_the_same_symbol():
    with pytest.raises(ValidationError, match="BRK B is already in the watchlist"):
        make_watchlist(symbols=["BRK B", "BRK.B"])
    wl = make_watchlist(symbols=["BRK.B"])
    services.watchlist_remove_symbol(watchlist=wl, symbol="brk b")
    assert wl.symbols == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("AAPL MSFT", "separate items with commas"),
        ("AAPL MSFT TSLA", "separate items with commas"),
        ("A B C", "separate items with commas"),
        ("X" * 29, "too long"),
        ("=1+2", "not a valid symbol"),
        ("BRK..B", "not a valid symbol"),
        ("BRK.", "not a valid symbol"),
        (".B", "not a valid symbol"),
        ("AA\x00PL", "not a valid symbol"),
        (12345, "text"),
        (True, "text"),
        (["AAPL"], "text"),
    ],
)
def test_symbols_that_no_entry_point_accepts(raw, words):
    with pytest.raises(ValidationError) as info:
        services.symbol_normalize(raw)
    message = info.value.message_dict["symbols"][0]
    assert words in message and len(message) < 200


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("AAPL, MSFT", ["AAPL", "MSFT"]),
        ("AAPL MSFT", ["AAPL", "MSFT"]),
        ("aapl msft\ntsla;nvda", ["aapl", "msft", "tsla", "nvda"]),
        ("BRK B, BRK.B", ["BRK B", "BRK.B"]),
        ("BRK B", ["BRK B"]),
        (" , ,", []),
        ("A$ B", ["A$", "B"]),
    ],
)
def test_symbols_split_reads_a_typed_box(text, pieces):
    assert services.symbols_split(text) == pieces


@pytest.mark.parametrize(
    ("name", "words"),
    [("a\x00b", "one line of text"), ("two\nlines", "one line of text"), ("   ", "a name"),
     (12345, "text")],
)  # fmt: skip
def test_watchlist_names_are_one_trimmed_line_of_text(name, words):
    with pytest.raises(ValidationError) as info:
        services.watchlist_create(name=name, symbols=["AAPL"])
    assert words in " ".join(info.value.message_dict["name"])
    wl = make_watchlist(name="Named")
    with pytest.raises(ValidationError) as info:
        services.watchlist_rename(watchlist=wl, name=name)
    assert words in " ".join(info.value.message_dict["name"])
    assert services.watchlist_rename(watchlist=wl, name="  Trimmed ").name == "Trimmed"
