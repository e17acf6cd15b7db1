"""Signal pages and the REST mirror of the program feed."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from signals.auth import feed_token_valid, token_from_request
from signals.models import Signal

API_LIMIT_DEFAULT = 100
API_LIMIT_MAX = 1000


def api_authorized(request) -> bool:
    """A logged-in session, or the external consumer token (header or ``?token=``)."""
    return request.user.is_authenticated or feed_token_valid(token_from_request(request))


def api_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"event": "error", "message": message}, status=status)


@login_not_required
@require_GET
def api_signals(request):
    """``GET /api/signals/?since=<id>&symbol=&limit=``: stored signals in id order."""
    if not api_authorized(request):
        return api_error(403, "Send the feed token as 'Authorization: Bearer <token>'.")
    since, limit = request.GET.get("since", "0"), request.GET.get("limit", "")
    if not since.isdigit():
        return api_error(400, f"since={since!r} is not a signal id: use a whole number.")
    if limit and (not limit.isdigit() or not 1 <= int(limit) <= API_LIMIT_MAX):
        return api_error(400, f"limit must be a whole number from 1 to {API_LIMIT_MAX}.")
    rows = Signal.objects.filter(id__gt=int(since)).order_by("id")
    if symbol := request.GET.get("symbol", "").strip().upper():
        rows = rows.filter(symbol=symbol)
    signals = [row.to_event() for row in rows[: int(limit or API_LIMIT_DEFAULT)]]
    return JsonResponse(
        {"signals": signals, "last_id": signals[-1]["id"] if signals else int(since)}
    )


@require_GET
def history(request):
    """The signal history page (being built: see issue 6)."""
    return render(request, "signals/history.html", {})
