"""What the worker keeps of the bars it takes in (DESIGN §7.3).

- Every closed bar of the run (and, on 5-second runs, the 1-minute bars built from them) goes
  to the bar store in the same transaction as that bar's signals (``Engine.on_bar``); warm-up
  bars are stored in batches.
- Every stored signal is tracked by an :class:`~engine.core.outcomes.OutcomeTracker`; the
  outcomes that become final on a bar are stored with that bar and published.
- At the start of a run, signals of the last hours still missing an outcome (the worker
  stopped before their horizons passed) are tracked again, their windows read from the
  store (:func:`seed`).
- The IB feed's warm-up reads the store first and asks IB only for the gap
  (:func:`warmup_from_store`): fewer history requests, fewer pacing errors.
- Stored bars older than the retention setting are pruned once a day (:func:`prune`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime

from bars import services as bar_store
from engine.core.bars import MINUTE, Bar, BucketAggregator
from engine.core.outcomes import Outcome, OutcomeTracker
from engine.worker.config import RunConfig
from signals import events
from signals.models import Signal as StoredSignal
from signals.services import outcomes_open, outcomes_record

logger = logging.getLogger(__name__)

# signal id, symbol, rule id, bar close time (epoch s): what an outcome event names
OutcomeKey = tuple[int, str, int | None, int]
FLUSH_BARS = 1000  # warm-up bars stored per transaction
# Signals this much older than the longest horizon are not tracked again at start: their
# windows are long past and, where the store has their bars, filled then.
SEED_SLACK_SECONDS = 6 * 3600
# Bars of overlap asked of IB beyond the stored ones (the store's last bar may be partial).
WARMUP_OVERLAP_BARS = 2
PRUNE_EVERY_SECONDS = 24 * 3600


class Keeper:
    """One run's bar store writes and outcome tracking, in the order bars are taken."""

    def __init__(self, config: RunConfig) -> None:
        self.bar_seconds = config.bar_seconds
        self.tracker = OutcomeTracker(config.horizons)
        size = config.bar_seconds
        self.minutes = BucketAggregator(MINUTE) if size < MINUTE and MINUTE % size == 0 else None
        self.unstored: list[Bar] = []
        self.finals: list[tuple[OutcomeKey, Outcome]] = []

    def take(self, bar: Bar) -> None:
        """A bar the run took (warm-up, catch-up or live), in time order per symbol."""
        self.unstored.append(bar)
        if self.minutes is not None:
            self.unstored.extend(self.minutes.feed(bar))
        done = self.tracker.on_bar(bar.symbol, bar.close_time, bar.high, bar.low, bar.close)
        if done:
            self.finals.extend(done)  # type: ignore[arg-type]  # keys are OutcomeKeys

    def known(self, bar: Bar) -> None:
        """A bar read back from the store (warm-up): outcomes only, nothing to store."""
        done = self.tracker.on_bar(bar.symbol, bar.close_time, bar.high, bar.low, bar.close)
        if done:
            self.finals.extend(done)  # type: ignore[arg-type]

    @property
    def full(self) -> bool:
        return len(self.unstored) >= FLUSH_BARS

    def drain(self) -> tuple[list[Bar], list[tuple[OutcomeKey, Outcome]]]:
        """What is waiting to be stored: bars and final outcomes."""
        bars, self.unstored = self.unstored, []
        finals, self.finals = self.finals, []
        return bars, finals

    def track(self, row: StoredSignal) -> None:
        """A signal just stored: measure what happens after it."""
        close_time = int(row.time.timestamp())
        key: OutcomeKey = (row.id, row.symbol, row.rule_id, close_time)
        self.tracker.add(key, row.symbol, row.price, row.side or None, close_time)


def store(
    bars: list[Bar], finals: Iterable[tuple[OutcomeKey, Outcome]]
) -> list[events.OutcomeEvent]:
    """Bars and final outcomes into the database (inside the caller's transaction); the
    outcome events of the rows written now (one already stored is not sent again)."""
    if bars:
        bar_store.bars_store(bars)
    finals = list(finals)
    if not finals:
        return []
    keys = {(key[0], out.horizon): key for key, out in finals}
    fresh = outcomes_record((key[0], out) for key, out in finals)
    out: list[events.OutcomeEvent] = []
    for row in fresh:
        signal_id, symbol, rule_id, close_time = keys[row.signal_id, row.horizon]
        out.append(
            events.outcome(
                id=signal_id,
                horizon=row.horizon,
                return_pct=row.return_pct,
                mfe_pct=row.mfe_pct,
                mae_pct=row.mae_pct,
                symbol=symbol,
                rule_id=rule_id,
                close_time=close_time,
            )
        )
    return out


def seed(keeper: Keeper, *, now: float) -> int:
    """Track again the signals of the last hours that lack an outcome, and give the tracker
    their stored bars; the outcomes that became final wait in ``keeper.finals``. Signals of
    another bar size than the run's are measured on their own bars once, here. Returns how
    many signals were still open."""
    horizons = keeper.tracker.horizons
    since = datetime.fromtimestamp(now - max(horizons) - SEED_SLACK_SECONDS, UTC)
    pending = outcomes_open(since=since, horizons=horizons)
    if not pending:
        return 0
    groups: dict[tuple[str, int], list[StoredSignal]] = {}
    for row in pending:
        groups.setdefault((row.symbol, row.bar_seconds), []).append(row)
    for (symbol, seconds), rows in groups.items():
        ours = seconds == keeper.bar_seconds
        tracker = keeper.tracker if ours else OutcomeTracker(horizons)
        first = min(int(row.time.timestamp()) for row in rows)
        for row in rows:
            close_time = int(row.time.timestamp())
            key: OutcomeKey = (row.id, row.symbol, row.rule_id, close_time)
            tracker.add(key, row.symbol, row.price, row.side or None, close_time)
        # Bars whose close is after the oldest signal: starts from ``first - seconds + 1``.
        for bar in bar_store.bars_between(symbol, seconds, first - seconds + 1, 2**62):
            done = tracker.on_bar(symbol, bar.close_time, bar.high, bar.low, bar.close)
            keeper.finals.extend(done)  # type: ignore[arg-type]
        if not ours:
            tracker.flush()
    return len(pending)


def warmup_from_store(
    symbols: Iterable[str], bar_seconds: int, need: int, *, now: float
) -> tuple[dict[str, list[Bar]], int]:
    """The stored bars each item's warm-up can start from, and how many bars the feed still
    has to send (the longest gap since an item's last stored bar, plus a little overlap;
    ``need`` when an item has no recent bars stored)."""
    out: dict[str, list[Bar]] = {}
    ask = 0
    for symbol in symbols:
        bars = bar_store.bars_recent(symbol, bar_seconds, count=need)
        if bars:
            gap = math.ceil(max(0.0, now - bars[-1].close_time) / bar_seconds)
            if gap + WARMUP_OVERLAP_BARS < need:
                out[symbol] = bars
                ask = max(ask, gap + WARMUP_OVERLAP_BARS)
                continue
        ask = need
    return out, min(need, max(ask, WARMUP_OVERLAP_BARS))


def prune(*, now: float, days: int) -> int:
    """Delete stored bars older than ``days``; how many went."""
    count = bar_store.bars_prune(now=int(now), days=days)
    if count:
        logger.info("pruned %d stored bars older than %d days", count, days)
    return count
