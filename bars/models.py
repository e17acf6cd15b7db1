"""The bar store: one row per closed bar the worker took in (DESIGN §7.3)."""

from django.db import models

from engine.core.instruments import MAX_ITEM_LENGTH

DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650


class StoredBar(models.Model):
    """A closed OHLCV bar of one watchlist item at one size. ``time`` is the bar's start in
    epoch seconds (UTC), as the core's ``Bar.time``; its close is ``time + seconds``."""

    id = models.BigAutoField(primary_key=True)
    symbol = models.CharField(max_length=MAX_ITEM_LENGTH)  # the item text: AAPL, ES:FUT:CME
    seconds = models.PositiveIntegerField(help_text="Bar length in seconds (5, 60).")
    time = models.BigIntegerField(help_text="Bar start, epoch seconds (UTC).")
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField()

    class Meta:
        verbose_name = "stored bar"
        constraints = [
            # One bar per item, size and start; the (symbol, seconds, time) index it makes
            # serves every read (charts, warm-up, backtests) and the prune as range scans.
            models.UniqueConstraint(
                fields=["symbol", "seconds", "time"], name="one_bar_per_symbol_size_time"
            )
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.seconds}s @ {self.time}"
