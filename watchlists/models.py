"""Watchlists and their items (at most 5 per list, exactly one list active).

An item is an instrument (DESIGN §7.1), stored as its fields and its canonical text
(``AAPL``, ``ES:FUT:CME``, ``EURUSD:CASH``, ``SAP:STK:IBIS:EUR``): the text is what the
pages show and the run's name for it; :func:`engine.core.instruments.parse_item` (through
``watchlists.services``) is the only way in.
"""

from django.db import models

from engine.core.instruments import (
    MAX_EXCHANGE_LENGTH,
    MAX_ITEM_LENGTH,
    MAX_SYMBOL_LENGTH,
    SEC_TYPES,
    TYPE_NAMES,
    Instrument,
)

MAX_SYMBOLS = 5


class Watchlist(models.Model):
    name = models.CharField(max_length=60, unique=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_watchlist",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def symbols(self) -> list[str]:
        """The item texts in order: the run's names (``AAPL``, ``ES:FUT:CME``)."""
        return [item.text for item in self.items.all()]

    @property
    def instruments(self) -> list[Instrument]:
        """The items as instruments, in order."""
        return [item.instrument for item in self.items.all()]


class WatchlistItem(models.Model):
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="items")
    text = models.CharField(
        max_length=MAX_ITEM_LENGTH,
        help_text="The item as shown and run: AAPL, ES:FUT:CME, EURUSD:CASH, SAP:STK:IBIS:EUR.",
    )
    # IB's contract fields; for an FX pair the symbol is the base currency (EUR of EURUSD).
    symbol = models.CharField(max_length=MAX_SYMBOL_LENGTH)
    sec_type = models.CharField(
        max_length=6, choices=[(t, TYPE_NAMES[t]) for t in SEC_TYPES], default="STK"
    )
    exchange = models.CharField(max_length=MAX_EXCHANGE_LENGTH, default="SMART")
    # "" lets IB's contract lookup decide (a future, an index, a stock on a named exchange).
    currency = models.CharField(max_length=3, blank=True, default="USD")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "text"], name="unique_item_per_list")
        ]

    def __str__(self) -> str:
        return self.text

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.symbol, self.sec_type, self.exchange, self.currency)
