"""Per-rule statistics of signal outcomes (DESIGN §7.3), one horizon at a time.

count = final outcomes with values; hit rate = share of those with ``return_pct`` > 0; mean
and median return; mean MFE and MAE. Shared by ``backtest``, the rules, signals and backtest
pages, so every place shows the same numbers. Pure: no Django.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from engine.core.outcomes import DIGITS, Outcome, horizon_label

# Edges (return %, upper bound exclusive) of the small distribution chart's bars.
DISTRIBUTION_EDGES: tuple[float, ...] = (
    -1.0,
    -0.5,
    -0.2,
    -0.1,
    -0.05,
    0.0,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
)


def _r(value: float) -> float:
    return round(value, DIGITS) + 0.0


@dataclass(slots=True)
class HorizonStats:
    """Running figures for one horizon; ``add`` outcomes, read ``to_json``."""

    horizon: int
    returns: list[float] = field(default_factory=list)
    hits: int = 0
    mfe_sum: float = 0.0
    mae_sum: float = 0.0
    empty: int = 0  # final with no bar in the window (a closed market)

    def add(self, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.add_values(outcome.return_pct, outcome.mfe_pct, outcome.mae_pct)

    def add_values(
        self, return_pct: float | None, mfe_pct: float | None, mae_pct: float | None
    ) -> None:
        """One final outcome's values (all None: no bar in its window, counted apart)."""
        if return_pct is None or mfe_pct is None or mae_pct is None:
            self.empty += 1
            return
        self.returns.append(return_pct)
        if return_pct > 0:
            self.hits += 1
        self.mfe_sum += mfe_pct
        self.mae_sum += mae_pct

    @property
    def count(self) -> int:
        return len(self.returns)

    def to_json(self) -> dict[str, object]:
        """``count``, ``hits``, ``hit_rate`` (0..1), ``mean_return_pct``,
        ``median_return_pct``, ``mean_mfe_pct``, ``mean_mae_pct`` (None with no outcome)."""
        n = len(self.returns)
        return {
            "horizon": horizon_label(self.horizon),
            "count": n,
            "hits": self.hits,
            "hit_rate": _r(self.hits / n) if n else None,
            "mean_return_pct": _r(math.fsum(self.returns) / n) if n else None,
            "median_return_pct": _r(median(self.returns)) if n else None,
            "mean_mfe_pct": _r(self.mfe_sum / n) if n else None,
            "mean_mae_pct": _r(self.mae_sum / n) if n else None,
        }

    def distribution(self, edges: Sequence[float] = DISTRIBUTION_EDGES) -> list[int]:
        """How many returns fall below each edge and above the last: ``len(edges) + 1``
        counts, for the small distribution chart."""
        counts = [0] * (len(edges) + 1)
        for value in self.returns:
            index = 0
            while index < len(edges) and value >= edges[index]:
                index += 1
            counts[index] += 1
        return counts


@dataclass(slots=True)
class RuleStats:
    """One rule's (or one rule × symbol's) signals and their outcomes per horizon."""

    horizons: tuple[int, ...]
    signals: int = 0
    per_horizon: dict[int, HorizonStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for horizon in self.horizons:
            self.per_horizon.setdefault(horizon, HorizonStats(horizon))

    def add_signal(self, outcomes: Iterable[Outcome | None] = ()) -> None:
        self.signals += 1
        for outcome in outcomes:
            self.add(outcome)

    def add(self, outcome: Outcome | None) -> None:
        if outcome is not None and outcome.horizon in self.per_horizon:
            self.per_horizon[outcome.horizon].add(outcome)

    def to_json(self) -> dict[str, object]:
        """``{"signals": N, "horizons": {"1m": {...}, ...}}``."""
        return {
            "signals": self.signals,
            "horizons": {horizon_label(h): self.per_horizon[h].to_json() for h in self.horizons},
        }
