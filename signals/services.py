"""Signals stored and read: the engine's single write path, and the reads by id that every
delivery (program and page sockets, REST, the dashboard) shares."""

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from engine.core.outcomes import Outcome as CoreOutcome
from engine.core.outcomes import horizon_label
from signals.models import Outcome, Signal


def signal_record(
    *,
    time: datetime,
    symbol: str,
    price: float,
    rule_id: int,
    rule_name: str,
    bar_seconds: int,
    values: dict,
    side: str | None = None,
    contract: dict | None = None,
) -> Signal | None:
    """Store a signal (``side``: the rule's, None for none; ``contract``: what the feed
    resolved the item to); ``None`` if this (rule, symbol, bar close time) was already
    stored."""
    try:
        with transaction.atomic():
            return Signal.objects.create(
                time=time,
                symbol=symbol,
                price=price,
                rule_id=rule_id,
                rule_name=rule_name,
                bar_seconds=bar_seconds,
                values=values,
                side=side or "",
                contract=contract or {},
            )
    except IntegrityError:
        if Signal.objects.filter(rule_id=rule_id, symbol=symbol, time=time).exists():
            return None
        raise


def newest_signal_id() -> int:
    """The highest stored id (0: none yet)."""
    return Signal.objects.order_by("-id").values_list("id", flat=True).first() or 0


def signals_after(
    after: int, *, upto: int | None = None, symbols: Iterable[str] | None = None, limit: int
) -> list[Signal]:
    """At most ``limit`` signals with ``after < id <= upto``, optionally of ``symbols`` only,
    in id order: how every consumer reads what it has not delivered yet."""
    rows = Signal.objects.filter(id__gt=after).order_by("id")
    if upto is not None:
        rows = rows.filter(id__lte=upto)
    if symbols is not None:
        rows = rows.filter(symbol__in=list(symbols))
    return list(rows[:limit])


def latest_signals(limit: int) -> list[Signal]:
    """The newest ``limit`` signals, newest first (the dashboard's live list)."""
    return list(Signal.objects.order_by("-id")[:limit])


def last_signal_of(symbol: str) -> Signal | None:
    return Signal.objects.filter(symbol=symbol).order_by("-id").first()


def outcomes_record(finals: Iterable[tuple[int, CoreOutcome]]) -> list[Outcome]:
    """Store final outcomes ``(signal id, Outcome)``; one already stored for that signal
    and horizon is left as it is. Returns the rows written now (to publish), unsaved copies.

    One ``INSERT … ON CONFLICT DO NOTHING`` per outcome (SQLite ≥ 3.24 and PostgreSQL): its
    row count says whether it was new, with no read first (the worker calls this in the
    transaction of every bar that completes a horizon)."""
    quote = connection.ops.quote_name
    columns = ("signal_id", "horizon", "return_pct", "mfe_pct", "mae_pct", "recorded_at")
    sql = (
        f"INSERT INTO {quote(Outcome._meta.db_table)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
    )
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    fresh: list[Outcome] = []
    with connection.cursor() as cursor:
        for signal_id, out in finals:
            values = (signal_id, out.horizon, out.return_pct, out.mfe_pct, out.mae_pct, stamp)
            cursor.execute(sql, values)
            if cursor.rowcount == 1:
                fresh.append(
                    Outcome(
                        signal_id=signal_id,
                        horizon=out.horizon,
                        return_pct=out.return_pct,
                        mfe_pct=out.mfe_pct,
                        mae_pct=out.mae_pct,
                        recorded_at=now,
                    )
                )
    return fresh


def outcomes_of(signal_ids: Iterable[int]) -> dict[int, dict[str, dict[str, float | None]]]:
    """Stored final outcomes per signal id: ``{id: {"1m": {"return_pct", "mfe_pct",
    "mae_pct"}, ...}}`` (a horizon not final yet is absent)."""
    out: dict[int, dict[str, dict[str, float | None]]] = {}
    ids = list(signal_ids)
    for start in range(0, len(ids), 500):
        rows = Outcome.objects.filter(signal_id__in=ids[start : start + 500]).order_by(
            "signal_id", "horizon"
        )
        for row in rows.values_list("signal_id", "horizon", "return_pct", "mfe_pct", "mae_pct"):
            signal_id, horizon, ret, mfe, mae = row
            out.setdefault(signal_id, {})[horizon_label(horizon)] = {
                "return_pct": ret,
                "mfe_pct": mfe,
                "mae_pct": mae,
            }
    return out


def outcomes_open(*, since: datetime, horizons: Iterable[int]) -> list[Signal]:
    """Signals stamped at or after ``since`` that still lack an outcome at one of
    ``horizons``, oldest first (a restarted worker tracks them again from the bar store)."""
    wanted = set(horizons)
    signals = list(Signal.objects.filter(time__gte=since).order_by("time", "id"))
    have: dict[int, set[int]] = {}
    for signal_id, horizon in Outcome.objects.filter(
        signal_id__in=[s.id for s in signals]
    ).values_list("signal_id", "horizon"):
        have.setdefault(signal_id, set()).add(horizon)
    return [s for s in signals if not wanted <= have.get(s.id, set())]
