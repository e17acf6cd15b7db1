"""Fill each item's instrument fields and text from the symbol an earlier version stored.

Every stored symbol was a US stock (``AAPL``, ``BRK B``): it is read by the one item parser
and keeps its text. A row no parser accepts (0003 left such rows for the user) is kept as
typed, so the page shows it and the run names it in its sentence; a second row of the same
item in one list is dropped. Backwards, only US stocks fit the old column: other items go.
"""

from django.db import migrations

from engine.core.instruments import MAX_ITEM_LENGTH, MAX_SYMBOL_LENGTH, ItemError, parse_item


def items_from_symbols(apps, schema_editor):
    WatchlistItem = apps.get_model("watchlists", "WatchlistItem")
    for item in WatchlistItem.objects.order_by("watchlist_id", "position", "id"):
        try:
            instrument = parse_item(item.symbol)
        except ItemError:
            item.text = (" ".join(item.symbol.split()).upper() or "?")[:MAX_ITEM_LENGTH]
        else:
            item.text = instrument.text
            item.symbol = instrument.symbol
            item.sec_type = instrument.sec_type
            item.exchange = instrument.exchange
            item.currency = instrument.currency
        twin = WatchlistItem.objects.filter(watchlist_id=item.watchlist_id, text=item.text)
        if twin.exclude(pk=item.pk).exists():
            item.delete()
        else:
            item.save(update_fields=["text", "symbol", "sec_type", "exchange", "currency"])


def symbols_from_items(apps, schema_editor):
    WatchlistItem = apps.get_model("watchlists", "WatchlistItem")
    for item in WatchlistItem.objects.all():
        if item.sec_type == "STK" and item.exchange == "SMART" and item.currency == "USD":
            item.symbol = item.text[:MAX_SYMBOL_LENGTH]
            item.save(update_fields=["symbol"])
        else:
            item.delete()


class Migration(migrations.Migration):
    dependencies = [("watchlists", "0004_items_as_instruments")]
    operations = [migrations.RunPython(items_from_symbols, symbols_from_items)]
