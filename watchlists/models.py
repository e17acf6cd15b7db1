"""Watchlists and their symbols (at most 5 per list, exactly one list active)."""

from django.db import models

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
        return [item.symbol for item in self.items.all()]


class WatchlistItem(models.Model):
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="items")
    symbol = models.CharField(max_length=12)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "symbol"], name="unique_symbol_per_list")
        ]

    def __str__(self) -> str:
        return self.symbol
