"""``GET /bars/api/``: stored bars of one symbol and size for a chart, with the signals in
their range for markers (login required)."""

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from bars.services import chart_history, chart_line_names, chart_signals
from engine.core.bars import END_BAR_TIME
from engine.core.inputs import InputError, parse_whole
from signals import events
from watchlists.services import symbol_normalize

LIMIT_DEFAULT = 1500
LIMIT_MAX = 5000
MAX_BAR_SECONDS = 86_400
SIGNALS_MAX = 2000  # markers per answer: the newest in range
NOT_LOGGED_IN = "Log in to read stored bars."


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse(events.error(message), status=status)


def _whole(request: HttpRequest, name: str, default: int | None, **bounds: int) -> int | None:
    raw = request.GET.get(name, "")
    if not raw.strip():
        return default
    return parse_whole(raw, name=name, **bounds)


@login_not_required  # a JSON sentence, not a redirect to the login page
@require_GET
def api_bars(request: HttpRequest) -> JsonResponse:
    """``?symbol=AAPL&seconds=5&before=<epoch start>&limit=1500&lines=MA20,EMA9``: the newest
    ``limit`` bars starting before ``before`` (or the newest), oldest first, as ``[time, o,
    h, l, c, v]``; the signals in their range; each asked line's value per bar (null while
    undefined)."""
    if not request.user.is_authenticated:
        return _error(403, NOT_LOGGED_IN)
    raw_symbol = request.GET.get("symbol", "")
    if not raw_symbol.strip():
        return _error(400, "Name a symbol: ?symbol=AAPL.")
    try:
        symbol = symbol_normalize(raw_symbol)
    except ValidationError as err:
        return _error(400, " ".join(err.messages))
    try:
        seconds = _whole(request, "seconds", 5, minimum=1, maximum=MAX_BAR_SECONDS)
        before = _whole(request, "before", None, maximum=END_BAR_TIME)
        limit = _whole(request, "limit", LIMIT_DEFAULT, minimum=1, maximum=LIMIT_MAX)
        lines = chart_line_names(request.GET.get("lines", ""))
    except (InputError, ValueError) as err:
        return _error(400, str(err))
    assert seconds is not None and limit is not None
    bars, values = chart_history(symbol, seconds, count=limit, before=before, lines=lines)
    signals = (
        chart_signals(symbol, bars[0][0], bars[-1][0] + seconds, limit=SIGNALS_MAX) if bars else []
    )
    return JsonResponse(
        {
            "symbol": symbol,
            "seconds": seconds,
            "bars": bars,
            "signals": signals,
            "lines": values,
        }
    )
