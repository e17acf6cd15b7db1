"""Per-rule statistics of stored outcomes (DESIGN §7.3) for the rules, rule and Signals pages.

One query per table: the chosen signals LEFT JOINed to their outcomes, grouped in Python
into :class:`engine.core.stats.RuleStats` per rule and per rule × symbol, so every page shows
the figures ``backtest`` prints. Cost: one row per outcome (or per signal with none);
``bench/outcomes_bench.py`` measures it on 100,000 outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

from engine.core.outcomes import horizon_label
from engine.core.stats import DISTRIBUTION_EDGES, HorizonStats, RuleStats
from signals.models import Signal

PERIODS: tuple[tuple[str, str], ...] = (
    ("today", "today"),
    ("7d", "7 days"),
    ("30d", "30 days"),
    ("all", "all time"),
)
DEFAULT_PERIOD = "30d"


def period_clean(raw: object) -> str:
    """A period key from a query string; anything else is the default (a bookmark from an
    older page, a typo) rather than an error page."""
    return raw if isinstance(raw, str) and raw in dict(PERIODS) else DEFAULT_PERIOD


def period_start(period: str, now: datetime) -> datetime | None:
    """The start (UTC) of ``period`` ending ``now``: today is the UTC calendar day; None for
    all time."""
    if period == "today":
        return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    if period == "7d":
        return now - timedelta(days=7)
    if period == "30d":
        return now - timedelta(days=30)
    return None


@dataclass
class StatsTable:
    """The figures of a set of signals: per rule, and per rule × symbol."""

    horizons: tuple[int, ...]
    rules: dict[int, RuleStats] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    symbols: dict[tuple[int, str], RuleStats] = field(default_factory=dict)
    total: RuleStats | None = None

    def first(self, rule_id: int) -> dict | None:
        """The rule's figures at the first horizon (the rules list's cell), or None."""
        stats = self.rules.get(rule_id)
        if stats is None or not self.horizons:
            return None
        return {"signals": stats.signals, **stats.per_horizon[self.horizons[0]].to_json()}

    def rows(self) -> list[dict]:
        """Per rule (by id), its figures per horizon and its symbols' rows: what the stats
        table template draws."""
        out = []
        for rule_id in sorted(self.rules):
            stats = self.rules[rule_id]
            symbols = sorted(
                (symbol, figures)
                for (rid, symbol), figures in self.symbols.items()
                if rid == rule_id
            )
            out.append(
                {
                    "rule_id": rule_id,
                    "rule_name": self.names.get(rule_id, ""),
                    "label": f"{self.names.get(rule_id, '')} #{rule_id}",
                    **_figures(stats),
                    "symbols": [{"symbol": s, **_figures(f)} for s, f in symbols],
                }
            )
        return out

    def charts(self) -> list[dict]:
        """A distribution chart per horizon over all these signals."""
        if self.total is None:
            return []
        return [distribution_chart(self.total.per_horizon[h]) for h in self.horizons]


def _figures(stats: RuleStats) -> dict:
    return {
        "signals": stats.signals,
        "horizons": [stats.per_horizon[h].to_json() for h in stats.horizons],
    }


def outcome_stats(signals: QuerySet[Signal], horizons: tuple[int, ...]) -> StatsTable:
    """The figures of ``signals`` (any filtered queryset) at ``horizons``: one query.

    Rows are read straight from the cursor and summed per rule × symbol × horizon into
    :class:`HorizonStats` (its fields, as its ``add`` would set them); the rules' and the
    total's figures are those merged, so the numbers are the core's."""
    table = StatsTable(horizons=horizons, total=RuleStats(horizons))
    query = signals.order_by().values_list(
        "id",
        "rule_id",
        "rule_name",
        "symbol",
        "outcomes__horizon",
        "outcomes__return_pct",
        "outcomes__mfe_pct",
        "outcomes__mae_pct",
    )
    try:
        sql, params = query.query.sql_with_params()
    except EmptyResultSet:  # a filter no row can match (``.none()``, ``id__in=[]``)
        return table
    pairs: dict[tuple[int, str], dict[int, HorizonStats]] = {}
    counts: dict[tuple[int, str], int] = {}
    seen: set[int] = set()
    wanted = set(horizons)
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(5000):
            for signal_id, rule_id, rule_name, symbol, horizon, ret, mfe, mae in batch:
                key = (rule_id, symbol)
                if signal_id not in seen:
                    seen.add(signal_id)
                    if key not in counts:
                        counts[key] = 0
                        pairs[key] = {h: HorizonStats(h) for h in horizons}
                        table.names.setdefault(rule_id, rule_name)
                    counts[key] += 1
                if horizon not in wanted:
                    continue
                pairs[key][horizon].add_values(ret, mfe, mae)
    total = table.total
    assert total is not None
    for key in sorted(pairs):
        rule_id = key[0]
        pair = table.symbols[key] = RuleStats(horizons, signals=counts[key], per_horizon=pairs[key])
        rule = table.rules.get(rule_id)
        if rule is None:
            rule = table.rules[rule_id] = RuleStats(horizons)
        for merged in (rule, total):
            merged.signals += pair.signals
            for h in horizons:
                _merge(merged.per_horizon[h], pair.per_horizon[h])
    return table


def _merge(into: HorizonStats, part: HorizonStats) -> None:
    into.returns.extend(part.returns)
    into.hits += part.hits
    into.mfe_sum += part.mfe_sum
    into.mae_sum += part.mae_sum
    into.empty += part.empty


def _edge_text(value: float) -> str:
    text = f"{abs(value):g}%"
    return text if value == 0 else f"{'+' if value > 0 else '−'}{text}"


CHART_BAR = 14  # px per bar of the distribution chart
CHART_HEIGHT = 40


def distribution_chart(stats: HorizonStats) -> dict:
    """Bars of the returns' distribution (``HorizonStats.distribution``) as SVG geometry:
    ``width``, ``height`` and per bar ``x``, ``y``, ``h``, ``count``, ``label`` (its range)
    and ``negative`` (left of zero)."""
    counts = stats.distribution()
    edges = DISTRIBUTION_EDGES
    top = max(counts) or 1
    bars = []
    for index, count in enumerate(counts):
        if index == 0:
            label = f"below {_edge_text(edges[0])}"
        elif index == len(edges):
            label = f"{_edge_text(edges[-1])} or more"
        else:
            label = f"{_edge_text(edges[index - 1])} to {_edge_text(edges[index])}"
        height = round(count / top * CHART_HEIGHT, 1) if count else 0
        bars.append(
            {
                "x": index * CHART_BAR,
                "y": round(CHART_HEIGHT - height, 1),
                "h": height,
                "count": count,
                "label": label,
                "negative": index < len(edges) and edges[index] <= 0,
            }
        )
    return {
        "horizon": horizon_label(stats.horizon),
        "count": stats.count,
        "width": CHART_BAR * len(counts),
        "zero_x": CHART_BAR * (list(edges).index(0.0) + 1) - 1,
        "height": CHART_HEIGHT,
        "bars": bars,
    }


def stats_context(table: StatsTable, caption: str) -> dict:
    """What ``signals/partials/stats.html`` draws."""
    has_signals = table.total is not None and table.total.signals > 0
    return {
        "stats_rows": table.rows(),
        "stats_charts": table.charts() if has_signals else [],
        "stats_caption": caption,
    }


def period_signals(period: str, now: datetime, *, rule_id: int | None = None) -> QuerySet[Signal]:
    """The signals of ``period`` (ending ``now``), of one rule or all."""
    rows = Signal.objects.all()
    if rule_id is not None:
        rows = rows.filter(rule_id=rule_id)
    start = period_start(period, now)
    if start is not None:
        rows = rows.filter(time__gte=start)
    return rows


def period_caption(period: str) -> str:
    return {
        "today": "Signals of today (the UTC day).",
        "7d": "Signals of the last 7 days.",
        "30d": "Signals of the last 30 days.",
    }.get(period, "All stored signals.")
