"""Watchlists through the services: symbols, the 5-symbol limit, one active list, locks."""

import pytest
from django.core.exceptions import ValidationError

from tests.factories import make_running_engine, make_watchlist
from watchlists import services
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db


def test_symbols_are_normalised_and_kept_in_order():
    wl = make_watchlist(symbols=[" aapl ", "brk  b", "msft", "rds.a"])
    assert wl.symbols == ["AAPL", "BRK B", "MSFT", "RDS.A"]


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
