"""Store class shares in IB's form: BRK.B becomes BRK B (a list holding both keeps one)."""

from django.db import migrations


def canonical_symbols(apps, schema_editor):
    WatchlistItem = apps.get_model("watchlists", "WatchlistItem")
    for item in WatchlistItem.objects.filter(symbol__contains=".").order_by("position", "id"):
        root, _, suffix = item.symbol.partition(".")
        if not root or not suffix or " " in item.symbol or "." in suffix:
            continue  # not a class share: symbol_normalize refuses it; left for the user
        symbol = f"{root} {suffix}"
        twin = WatchlistItem.objects.filter(watchlist_id=item.watchlist_id, symbol=symbol)
        if twin.exists():
            item.delete()
        else:
            item.symbol = symbol
            item.save(update_fields=["symbol"])


class Migration(migrations.Migration):
    dependencies = [("watchlists", "0002_seed_demo_watchlist")]
    operations = [migrations.RunPython(canonical_symbols, migrations.RunPython.noop)]
