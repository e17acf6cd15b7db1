"""Signals of any instrument (DESIGN §7.1): ``symbol`` holds the watchlist item text (up to
40 characters: ``SAP:STK:IBIS:EUR``), ``contract`` the contract the feed resolved it to."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0003_signal_side"),
    ]

    operations = [
        migrations.AlterField(
            model_name="signal",
            name="symbol",
            field=models.CharField(max_length=40),
        ),
        migrations.AddField(
            model_name="signal",
            name="contract",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
