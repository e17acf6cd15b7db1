"""Catch-up after a crash: what a worker that died mid-run left behind, and which bars of the
next run's warm-up its rules judge live, so every signal is stored exactly once whatever
restarts (the database refuses a signal stored already)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from engine.core.bars import Bar
from engine.models import AppSettings, EngineState
from engine.worker.config import RunConfig
from rules.models import Rule
from signals.models import Signal

CATCH_UP_SECONDS = 3600  # IB history backfills an hour of 5-second bars; longer is not replayed
# An engine-state write this long after the dead worker's last heartbeat was not the worker's
# (its writes come with or within a tick of a heartbeat): the user pressed Start or Stop.
USER_WRITE_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class Crash:
    """A run that a worker left without cleaning up (kill -9, power loss), as the engine-state
    row kept it; read at worker start, before :func:`engine.services.worker_recover`."""

    died: datetime  # the dead worker's last heartbeat
    started: datetime | None  # when its run began
    rule_ids: frozenset[int]
    # item -> close time (epoch s) up to which the run judged its bars live, signals stored
    judged: dict[str, int]
    desired: str
    touched: bool  # Start or Stop was pressed after the worker died

    @property
    def when(self) -> str:
        return f"{self.died.astimezone(UTC):%H:%M:%S} UTC"


def crash_read() -> Crash | None:
    """The run a dead worker left (None: the last one ended cleanly, or there was none)."""
    state = EngineState.objects.filter(pk=1).first()
    if state is None or state.heartbeat is None:
        return None
    if not state.run_rule_ids and state.run_watchlist_id is None:
        return None
    judged: dict[str, int] = {}
    if isinstance(state.symbols, dict):
        for item, info in state.symbols.items():
            last = info.get("last_bar") if isinstance(info, dict) else None
            if type(last) is int:
                judged[item] = last
    return Crash(
        died=state.heartbeat,
        started=state.run_started,
        rule_ids=frozenset(state.run_rule_ids),
        judged=judged,
        desired=state.desired,
        touched=state.updated_at - state.heartbeat > USER_WRITE_SLACK,
    )


@dataclass
class CatchUp:
    """A run's catch-up: the warm-up bars of an item closing after ``after[item]`` are judged
    live by the rules in ``rule_ids`` (the others warm up on them), once the item has had the
    ``need`` warm-up bars its rules need."""

    crash: Crash
    after: dict[str, int]
    rule_ids: frozenset[int]
    need: int
    fresh: tuple[str, ...] = ()  # names of the run's rules that start fresh (edited or new)
    bars: int = 0
    signals: int = 0
    reported: bool = False
    warmed: dict[str, int] = field(default_factory=dict)  # item -> warm-up bars it took

    def judges(self, bar: Bar) -> bool:
        """Whether this warm-up bar (each one, in order) is one the dead run never judged;
        False counts it as warm-up. A bar the indicators are still filling on stays warm-up
        (the feed's history did not reach back far enough: a stretch over an hour)."""
        after = self.after.get(bar.symbol)
        if after is None:
            return False
        warmed = self.warmed.get(bar.symbol, 0)
        if bar.close_time > after and warmed >= self.need:
            return True
        self.warmed[bar.symbol] = warmed + 1
        return False

    def extra_bars(self, now: float, bar_seconds: int) -> int:
        """Warm-up bars to ask for on top of what the rules need: the dead stretch."""
        if not self.after or not self.rule_ids:
            return 0
        gap = now - min(self.after.values())
        if gap <= 0:
            return 0
        return min(math.ceil(gap / bar_seconds) + 1, CATCH_UP_SECONDS // bar_seconds)

    def sentence(self) -> str:
        bars = f"{self.bars:,} bar" + ("" if self.bars == 1 else "s")
        signals = f"{self.signals:,} signal" + ("" if self.signals == 1 else "s")
        out = (
            f"Resumed after the worker stopped unexpectedly at {self.crash.when}: "
            f"caught up {bars}, {signals}"
        )
        if self.fresh:
            names = ", ".join(f"“{name}”" for name in self.fresh)
            verb = "rule {} starts" if len(self.fresh) == 1 else "rules {} start"
            out += "; " + verb.format(names) + " fresh (edited since, or new)"
        return out + "."


def catch_up_plan(crash: Crash, config: RunConfig) -> tuple[CatchUp | None, str]:
    """The first run after a crash: its catch-up, or None and why not (a sentence for the
    status; empty when there is nothing to say).

    No catch-up when the user pressed Stop (or Start) meanwhile (no burst of old signals),
    after more than :data:`CATCH_UP_SECONDS`, when the settings changed since the dead run
    began, and for the csv feed (it replays its whole file: every bar is live anyway). A rule
    the dead run did not hold, or edited since it began, never fires on the old bars."""
    if crash.desired != EngineState.Desired.RUNNING or crash.touched or config.feed == "csv":
        return None, ""
    down = f"The worker stopped unexpectedly at {crash.when}"
    if timezone.now() - crash.died > timedelta(seconds=CATCH_UP_SECONDS):
        return None, f"{down}, over an hour ago: bars from while it was down are not replayed."
    started = crash.started
    app_settings = AppSettings.objects.filter(pk=1).first()
    if started is None or (app_settings is not None and app_settings.updated_at > started):
        return None, f"{down}; the settings changed since, so bars from then are not replayed."
    edited = set(
        Rule.objects.filter(pk__in=config.rule_ids, updated_at__gt=started).values_list(
            "pk", flat=True
        )
    )
    rule_ids = frozenset(pk for pk in config.rule_ids if pk in crash.rule_ids and pk not in edited)
    fresh = tuple(r.name for r in config.rules if r.id not in rule_ids)
    symbols = set(config.symbols)
    after = {item: t for item, t in crash.judged.items() if item in symbols}
    return CatchUp(
        crash=crash, after=after, rule_ids=rule_ids, need=config.warmup_bars, fresh=fresh
    ), ""


def last_signals(symbol: str, rule_ids: frozenset[int], before: int) -> dict[int, int]:
    """Per rule, the close time (epoch s) of its last stored signal on ``symbol`` before the
    bar closing at ``before``."""
    rows = (
        Signal.objects.filter(
            symbol=symbol, rule_id__in=list(rule_ids), time__lt=datetime.fromtimestamp(before, UTC)
        )
        .values("rule_id")
        .annotate(last=Max("time"))
    )
    return {row["rule_id"]: int(row["last"].timestamp()) for row in rows}
