"""Upgrading keeps the lists: 0003 stores class shares in IB's form (BRK.B → BRK B), 0004-0006
turn each stored symbol into an item (fields + canonical text, unique per list); going back
keeps what the old column can hold."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_ITEMS = [("watchlists", "0002_seed_demo_watchlist")]
AFTER_ITEMS = [("watchlists", "0006_unique_item_per_list")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_stored_symbols_become_items():
    old = migrate(BEFORE_ITEMS)
    Watchlist = old.get_model("watchlists", "Watchlist")
    Item = old.get_model("watchlists", "WatchlistItem")
    tech = Watchlist.objects.create(name="Old tech")
    other = Watchlist.objects.create(name="Old other")
    for position, symbol in enumerate(["AAPL", "BRK B", "BRK.B", "A$"]):
        Item.objects.create(watchlist=tech, symbol=symbol, position=position)
    Item.objects.create(watchlist=other, symbol="BF.B", position=0)
    Item.objects.create(watchlist=other, symbol="7203", position=1)

    new = migrate(latest())
    Item = new.get_model("watchlists", "WatchlistItem")
    fields = ("text", "symbol", "sec_type", "exchange", "currency")
    rows = Item.objects.filter(watchlist_id=tech.pk).order_by("position", "id")
    assert list(rows.values_list(*fields)) == [
        ("AAPL", "AAPL", "STK", "SMART", "USD"),
        ("BRK B", "BRK B", "STK", "SMART", "USD"),
        # No parser accepts it: kept as typed, the page shows it and the run names it.
        ("A$", "A$", "STK", "SMART", "USD"),
    ]
    rows = Item.objects.filter(watchlist_id=other.pk).order_by("position", "id")
    assert list(rows.values_list(*fields)) == [
        ("BF B", "BF B", "STK", "SMART", "USD"),
        ("7203", "7203", "STK", "SMART", "USD"),
    ]
    seeded = Item.objects.filter(watchlist__name="Default").order_by("position")
    assert list(seeded.values_list("text", flat=True)) == ["AAPL", "MSFT", "NVDA", "SPY", "TSLA"]


@pytest.mark.django_db(transaction=True)
def test_going_back_keeps_the_us_stocks():
    new = migrate(AFTER_ITEMS)
    Watchlist = new.get_model("watchlists", "Watchlist")
    Item = new.get_model("watchlists", "WatchlistItem")
    wl = Watchlist.objects.create(name="Mixed")
    Item.objects.create(watchlist=wl, text="BRK B", symbol="BRK B", position=0)
    Item.objects.create(
        watchlist=wl, text="ES:FUT:CME", symbol="ES", sec_type="FUT", exchange="CME",
        currency="", position=1,
    )  # fmt: skip
    old = migrate([("watchlists", "0003_class_share_symbols_with_a_space")])
    Item = old.get_model("watchlists", "WatchlistItem")
    assert list(Item.objects.filter(watchlist_id=wl.pk).values_list("symbol", flat=True)) == [
        "BRK B"
    ]
    migrate(latest())
