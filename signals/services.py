"""Signals stored and read: the engine's single write path, and the reads by id that every
delivery (program and page sockets, REST, the dashboard) shares."""

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from signals.models import Signal


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
