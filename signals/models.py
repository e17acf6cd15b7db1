"""The Signal model: one row per (rule, symbol, bar close time), written by the engine."""

from django.db import models
from django.utils import timezone

from engine.core.instruments import MAX_ITEM_LENGTH
from signals import events


class Signal(models.Model):
    id = models.BigAutoField(primary_key=True)
    time = models.DateTimeField(help_text="Bar close time (UTC).")
    # The watchlist item text (DESIGN §7.1): AAPL, ES:FUT:CME, SAP:STK:IBIS:EUR.
    symbol = models.CharField(max_length=MAX_ITEM_LENGTH)
    price = models.FloatField()
    # A plain id, not a foreign key: history keeps the rule id it was fired by even after the
    # rule is deleted, and it matches the `rule_id` of the event JSON.
    rule_id = models.IntegerField()
    rule_name = models.CharField(max_length=80)
    bar_seconds = models.PositiveIntegerField(default=5)
    values = models.JSONField(default=dict, blank=True)
    # The rule's side when it fired (DESIGN §7.2): "buy" or "sell"; "" for none (the event's
    # null), Django's convention for an empty text column.
    side = models.CharField(max_length=4, blank=True, default="")
    recorded_at = models.DateTimeField(default=timezone.now)
    # The contract the feed resolved the item to, the event's `contract` object (DESIGN §7.1):
    # local_symbol, sec_type, exchange, currency, min_tick; {} when the feed reported none.
    contract = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule_id", "symbol", "time"], name="one_signal_per_rule_symbol_bar"
            )
        ]
        indexes = [
            models.Index(fields=["symbol", "id"], name="signal_symbol_id"),
            models.Index(fields=["time"], name="signal_time"),
            models.Index(fields=["rule_id", "id"], name="signal_rule_id"),
            # The history page orders by (time, id): these serve its symbol and rule filters
            # (with or without a date range) as one index range scan, no sort.
            models.Index(fields=["symbol", "time", "id"], name="signal_symbol_time"),
            models.Index(fields=["rule_id", "time", "id"], name="signal_rule_time"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.price} @ {self.time:%Y-%m-%d %H:%M:%S}Z"

    def to_event(self) -> events.SignalEvent:
        """The DESIGN §3 event JSON for this signal."""
        return events.signal(
            id=self.id,
            symbol=self.symbol,
            price=self.price,
            rule_id=self.rule_id,
            rule_name=self.rule_name,
            close_time=int(self.time.timestamp()),
            bar_seconds=self.bar_seconds,
            values=self.values,
            side=self.side or None,
            contract=self.contract or None,
        )
