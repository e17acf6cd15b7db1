"""Watchlist items become instruments (DESIGN §7.1): the fields IB's contract needs (symbol,
sec_type, exchange, currency) and the canonical item text, unique per list. Existing rows
are US stocks; 0005 fills the new fields from their ``symbol`` (``BRK B`` stays ``BRK B``)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("watchlists", "0003_class_share_symbols_with_a_space")]

    operations = [
        migrations.RemoveConstraint(model_name="watchlistitem", name="unique_symbol_per_list"),
        migrations.AddField(
            model_name="watchlistitem",
            name="text",
            field=models.CharField(
                default="",
                help_text=(
                    "The item as shown and run: AAPL, ES:FUT:CME, EURUSD:CASH, SAP:STK:IBIS:EUR."
                ),
                max_length=40,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="watchlistitem",
            name="sec_type",
            field=models.CharField(
                choices=[
                    ("STK", "stock"),
                    ("FUT", "future"),
                    ("CASH", "FX pair"),
                    ("IND", "index"),
                    ("CRYPTO", "crypto coin"),
                ],
                default="STK",
                max_length=6,
            ),
        ),
        migrations.AddField(
            model_name="watchlistitem",
            name="exchange",
            field=models.CharField(default="SMART", max_length=10),
        ),
        migrations.AddField(
            model_name="watchlistitem",
            name="currency",
            field=models.CharField(blank=True, default="USD", max_length=3),
        ),
    ]
