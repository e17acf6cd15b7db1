"""A list holds each item once (by its canonical text: AAPL and AAPL:STK:SMART:USD are one)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("watchlists", "0005_items_from_symbols")]

    operations = [
        migrations.AddConstraint(
            model_name="watchlistitem",
            constraint=models.UniqueConstraint(
                fields=("watchlist", "text"), name="unique_item_per_list"
            ),
        ),
    ]
