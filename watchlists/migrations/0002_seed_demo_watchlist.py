"""Seed an active watchlist so a fresh install shows live demo signals at once."""

from django.db import migrations

SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY", "TSLA"]


def seed(apps, schema_editor):
    Watchlist = apps.get_model("watchlists", "Watchlist")
    WatchlistItem = apps.get_model("watchlists", "WatchlistItem")
    if Watchlist.objects.exists():
        return
    watchlist = Watchlist.objects.create(name="Default", is_active=True)
    # Tests re-seed with today's model, whose items also have their text (0004, DESIGN §7.1);
    # these are US stocks, so the text is the symbol and the other fields their defaults.
    has_text = any(field.name == "text" for field in WatchlistItem._meta.get_fields())
    for position, symbol in enumerate(SYMBOLS):
        WatchlistItem.objects.create(
            watchlist=watchlist,
            symbol=symbol,
            position=position,
            **({"text": symbol} if has_text else {}),
        )


def unseed(apps, schema_editor):
    apps.get_model("watchlists", "Watchlist").objects.filter(name="Default").delete()


class Migration(migrations.Migration):
    dependencies = [("watchlists", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
