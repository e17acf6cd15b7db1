"""A backtest run (rules × symbols × period × source) and the signals it found (DESIGN §7.3)."""

from django.db import models

MAX_RUN_RULES = 10  # as many as may be active at once (DESIGN §7.2)
MAX_PERIOD_DAYS = 366


class BacktestRun(models.Model):
    class Source(models.TextChoices):
        STORED = "stored", "Stored bars"
        CSV = "csv", "Uploaded CSV"
        IB = "ib", "IB history (downloaded)"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    # The rules as they were when the run was asked for: [{"id", "name", "definition"}].
    rules = models.JSONField(default=list)
    symbols = models.JSONField(
        default=list, blank=True
    )  # item texts; a CSV run: the file's, once read
    start = models.DateTimeField()
    end = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STORED)
    # Relative to SCALP_VAR_DIR/uploads; never a path a user typed.
    upload = models.CharField(max_length=200, blank=True)
    upload_name = models.CharField(max_length=200, blank=True)  # the file's name, for display
    horizons = models.CharField(max_length=60)  # "1m,5m,15m"
    bar_seconds = models.PositiveSmallIntegerField(default=5)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1
    eta_seconds = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)  # what it is doing now
    notices = models.JSONField(
        default=list, blank=True
    )  # sentences worth keeping (IB items refused, ...)
    cancel_requested = models.BooleanField(default=False)
    bars = models.PositiveBigIntegerField(default=0)
    signal_count = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)  # {"stats": [stats lines]}
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "id"], name="backtest_state_id")]

    def __str__(self) -> str:
        return f"Backtest {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.CANCELLED, self.State.FAILED)

    @property
    def eta_text(self) -> str:
        """``about 40 s left``, ``about 12 min left``; empty while unknown."""
        if self.eta_seconds is None:
            return ""
        seconds = max(1, round(self.eta_seconds))
        if seconds < 120:
            return f"about {seconds} s left"
        return f"about {round(seconds / 60)} min left"

    @property
    def rule_names(self) -> str:
        return ", ".join(str(rule.get("name", "")) for rule in self.rules)

    @property
    def horizon_labels(self) -> list[str]:
        return [label for label in self.horizons.split(",") if label]


class BacktestSignal(models.Model):
    """One signal of a run with its outcomes: the event ``backtest`` prints (DESIGN §7.3)."""

    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="signals")
    seq = models.PositiveIntegerField()  # the event's id, 1..N in the run
    symbol = models.CharField(max_length=64)
    rule_id = models.IntegerField(null=True)
    time = models.BigIntegerField()  # the signal bar's close, epoch seconds
    event = models.JSONField()  # the signal event with its "outcomes"

    class Meta:
        ordering = ["run", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["run", "seq"], name="backtest_signal_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} #{self.seq}"
