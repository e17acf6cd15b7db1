"""Watchlist admin: inline symbols validated like the services."""

import pytest

from tests.factories import make_running_engine, make_watchlist
from watchlists.models import Watchlist

pytestmark = pytest.mark.django_db


def inline_data(symbols, *, initial=0, total=None):
    data = {
        "items-TOTAL_FORMS": str(total if total is not None else len(symbols)),
        "items-INITIAL_FORMS": str(initial),
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "5",
    }
    for i, symbol in enumerate(symbols):
        data[f"items-{i}-text"] = symbol
        data[f"items-{i}-position"] = str(i)
    return data


def test_admin_creates_a_watchlist_with_normalised_symbols(admin_client):
    resp = admin_client.post("/admin/watchlists/watchlist/add/",
                             {"name": "Admin list", **inline_data(["aapl", " msft"])})  # fmt: skip
    assert resp.status_code == 302
    assert Watchlist.objects.get(name="Admin list").symbols == ["AAPL", "MSFT"]


def test_admin_refuses_a_sixth_symbol(admin_client):
    resp = admin_client.post("/admin/watchlists/watchlist/add/",
                             {"name": "Too many", **inline_data(list("ABCDEF"))})  # fmt: skip
    assert resp.status_code == 200
    page = resp.content.decode()
    assert "at most 5" in page
    assert not Watchlist.objects.filter(name="Too many").exists()


def test_admin_refuses_a_bad_symbol(admin_client):
    resp = admin_client.post("/admin/watchlists/watchlist/add/",
                             {"name": "Bad", **inline_data(["AAPL", "A$PL"])})  # fmt: skip
    assert resp.status_code == 200
    assert "not a valid symbol" in resp.content.decode()
    assert not Watchlist.objects.filter(name="Bad").exists()


def test_admin_refuses_changing_the_running_watchlist(admin_client):
    wl = make_watchlist(name="Live", symbols=["AAPL"], activate=True)
    make_running_engine(watchlist=wl)
    item = wl.items.get()
    data = {"name": "Live", **inline_data(["AAPL", "TSLA"], initial=1)}
    data["items-0-id"] = str(item.pk)
    data["items-0-watchlist"] = str(wl.pk)
    resp = admin_client.post(f"/admin/watchlists/watchlist/{wl.pk}/change/", data)
    assert resp.status_code == 200
    assert "stop the engine before changing it" in resp.content.decode()
    assert wl.symbols == ["AAPL"]


def test_admin_delete_selected_refuses_the_running_watchlist(admin_client):
    live = make_watchlist(name="Live", symbols=["AAPL"], activate=True)
    spare = make_watchlist(name="Spare", symbols=["MSFT"])
    make_running_engine(watchlist=live)
    selected = {"action": "delete_selected", "_selected_action": [live.pk, spare.pk]}
    for data in (selected, {**selected, "post": "yes"}):  # the confirmation page, then its "Yes"
        resp = admin_client.post("/admin/watchlists/watchlist/", data, follow=True)
        assert resp.status_code == 200
        assert "stop the engine before deleting it" in resp.content.decode()
        assert set(Watchlist.objects.filter(pk__in=[live.pk, spare.pk])) == {live, spare}


def test_admin_delete_selected_deletes_lists_no_run_holds(admin_client):
    spare = make_watchlist(name="Spare", symbols=["MSFT"])
    other = make_watchlist(name="Other", symbols=["TSLA"])
    selected = {"action": "delete_selected", "_selected_action": [spare.pk, other.pk]}
    confirm = admin_client.post("/admin/watchlists/watchlist/", selected)
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    resp = admin_client.post("/admin/watchlists/watchlist/", {**selected, "post": "yes"},
                             follow=True)  # fmt: skip
    assert "Successfully deleted 2" in resp.content.decode()
    assert not Watchlist.objects.filter(pk__in=[spare.pk, other.pk]).exists()


def test_admin_refuses_brk_b_beside_brk_dot_b(admin_client):
    resp = admin_client.post("/admin/watchlists/watchlist/add/",
                             {"name": "Class", **inline_data(["BRK B", "brk.b"])})  # fmt: skip
    assert resp.status_code == 200
    assert "BRK B is listed twice" in resp.content.decode()
    assert not Watchlist.objects.filter(name="Class").exists()


def test_admin_refuses_a_name_with_a_line_break(admin_client):
    resp = admin_client.post("/admin/watchlists/watchlist/add/",
                             {"name": "Two\nlines", **inline_data(["AAPL"])})  # fmt: skip
    assert resp.status_code == 200
    assert "one line of text" in resp.content.decode()
    assert not Watchlist.objects.filter(name__startswith="Two").exists()
