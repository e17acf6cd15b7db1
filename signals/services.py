"""Recording signals: the engine's single write path for them."""

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
) -> Signal | None:
    """Store a signal; ``None`` if this (rule, symbol, bar close time) was already stored."""
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
            )
    except IntegrityError:
        if Signal.objects.filter(rule_id=rule_id, symbol=symbol, time=time).exists():
            return None
        raise
