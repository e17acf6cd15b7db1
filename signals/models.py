"""The Signal model: one row per (rule, symbol, bar close time), written by the engine."""

from django.db import models
from django.utils import timezone

from engine.core.instruments import MAX_ITEM_LENGTH
from engine.core.outcomes import horizon_label
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


class Outcome(models.Model):
    """A signal's final outcome at one horizon (DESIGN §7.3), written by the worker when a
    bar with close time ≥ T + horizon arrives. The three values are null when no bar closed
    inside the window (the market was closed for the whole horizon)."""

    id = models.BigAutoField(primary_key=True)
    signal = models.ForeignKey(Signal, on_delete=models.CASCADE, related_name="outcomes")
    horizon = models.PositiveIntegerField(help_text="Seconds after the signal's bar close.")
    return_pct = models.FloatField(null=True, blank=True)
    mfe_pct = models.FloatField(null=True, blank=True)
    mae_pct = models.FloatField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["signal_id", "horizon"]
        constraints = [
            models.UniqueConstraint(fields=["signal", "horizon"], name="one_outcome_per_horizon")
        ]

    def __str__(self) -> str:
        return f"signal {self.signal_id} +{self.horizon}s: {self.return_pct}%"

    @property
    def label(self) -> str:
        return horizon_label(self.horizon)

    def to_event(self) -> events.OutcomeEvent:
        signal = self.signal
        return events.outcome(
            id=signal.id,
            horizon=self.horizon,
            return_pct=self.return_pct,
            mfe_pct=self.mfe_pct,
            mae_pct=self.mae_pct,
            symbol=signal.symbol,
            rule_id=signal.rule_id,
            close_time=int(signal.time.timestamp()),
        )
