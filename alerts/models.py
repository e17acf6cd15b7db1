"""Alert destinations and the outbox of their deliveries (DESIGN §7.4).

A signal row and one ``Delivery`` per matching destination are written in one transaction
(``alerts.services.outbox_add``); the worker's sender (``alerts/sender.py``) delivers each
pending row at least once, in signal order per destination.
"""

from django.db import models
from django.utils import timezone

TELEGRAM_API = "https://api.telegram.org"
FAILING_AFTER = 3  # failed tries in a row before a destination counts as failing


class Destination(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        TELEGRAM = "telegram", "Telegram"
        DISCORD = "discord", "Discord"

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # webhook and discord: where to POST; telegram: the Bot API base URL.
    url = models.CharField(max_length=2000)
    # webhook: optional JSON body template with {{placeholders}} (empty: the signal event).
    template = models.TextField(blank=True, default="")
    # webhook: optional HMAC secret (X-Scalp-Signature); telegram: the bot token.
    secret = models.CharField(max_length=200, blank=True, default="")
    chat_id = models.CharField(max_length=64, blank=True, default="")  # telegram
    # Filters; empty means every rule / symbol / side.
    rule_ids = models.JSONField(default=list, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    side = models.CharField(max_length=4, blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Health, written by the sender: the dashboard warns while a destination keeps failing.
    failures_in_row = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    last_ok_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def health_text(self, *, with_error: bool = False) -> str:
        """How the last tries went, for the CLI and the admin ("failing (4 in a row)", "ok")."""
        error = f": {self.last_error}" if with_error else ""
        if self.failures_in_row >= FAILING_AFTER:
            return f"failing ({self.failures_in_row} in a row){error}"
        if self.failures_in_row:
            return f"{self.failures_in_row} failed{error}"
        return "ok" if self.last_ok_at else "not sent yet"

    def filters_text(self, rule_names: dict[int, str] | None = None) -> str:
        """The filters as one line: "Rules: 3 Breakout · Symbols: AAPL, MSFT · Side: buy"
        (``rule_names``: id → name, to name the rules), or "Every signal"."""
        parts = []
        if self.rule_ids:
            if rule_names is None:
                named = [str(pk) for pk in self.rule_ids]
            else:
                named = [f"{pk} {rule_names.get(pk, '(removed)')}" for pk in self.rule_ids]
            parts.append("Rules: " + ", ".join(named))
        if self.symbols:
            parts.append("Symbols: " + ", ".join(self.symbols))
        if self.side:
            parts.append(f"Side: {self.side}")
        return " · ".join(parts) if parts else "Every signal"


class Delivery(models.Model):
    """One signal (or a test) to one destination: the outbox row and its log line."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # Each row written costs every index below: the worker writes them while it stores a
    # signal, so the foreign keys get none of their own (the indexes in Meta cover the reads).
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Null for a "Send test" delivery.
    signal = models.ForeignKey(
        "signals.Signal",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    tries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_try_at = models.DateTimeField(default=timezone.now)
    last_try_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)  # of the last try
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "signal"],
                condition=models.Q(signal__isnull=False),
                name="one_delivery_per_destination_signal",
            )
        ]
        indexes = [
            # The sender's head of each destination's queue: pending rows in id order (only
            # pending rows are in it, so it stays as small as the queue).
            models.Index(
                fields=["destination", "id"],
                condition=models.Q(status="pending"),
                name="delivery_queue",
            ),
            # The log of one destination, newest first (and removing a destination).
            models.Index(fields=["destination", "id"], name="delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} to {self.destination_id}: {self.status}"
