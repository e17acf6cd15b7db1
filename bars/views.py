"""The chart around one signal: its symbol's stored bars before and after it, a marker."""

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bars.services import bars_around
from engine.services import settings_get
from signals.forms import MAX_ID
from signals.models import Signal
from signals.services import outcomes_of


@require_GET
def signal_chart(request, signal_id: int):
    if signal_id > MAX_ID:  # a 5000-digit id: no such signal, not an overflow in SQLite
        raise Http404("No such signal.")
    signal = Signal.objects.filter(pk=signal_id).first()
    if signal is None:
        raise Http404("No such signal.")
    close = int(signal.time.timestamp())
    around = bars_around(signal.symbol, close, prefer=signal.bar_seconds)
    bars = around.bars if around else []
    seconds = around.seconds if around else signal.bar_seconds
    chart = {
        "symbol": signal.symbol,
        "seconds": seconds,
        "bars": [[b.time, b.open, b.high, b.low, b.close, b.volume] for b in bars],
        "signals": [
            {
                "id": signal.pk,
                "time": close,
                "price": signal.price,
                "side": signal.side,
                "rule_id": signal.rule_id,
                "rule_name": signal.rule_name,
            }
        ],
    }
    return render(
        request,
        "bars/signal_chart.html",
        {
            "signal": signal.to_event(),
            "row": signal,
            "chart": chart,
            "seconds": seconds,
            "other_size": bool(bars) and seconds != signal.bar_seconds,
            "window": around,
            "retention_days": settings_get().bar_retention_days,
            "outcomes": outcomes_of([signal.pk]).get(signal.pk, {}),
        },
    )
