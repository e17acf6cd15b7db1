"""Engine pages: the dashboard / control panel."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from engine.services import engine_state_get, settings_get
from signals.views import api_authorized, api_error
from watchlists.services import watchlist_get_active


@require_GET
def dashboard(request):
    context = {
        "engine": engine_state_get(),
        "settings": settings_get(),
        "watchlist": watchlist_get_active(),
    }
    return render(request, "engine/dashboard.html", context)


def engine_status(state) -> dict:
    """The engine state as the JSON of a ``status`` event."""
    return {
        "event": "status",
        "state": state.effective_state,
        "message": state.message,
        "desired": state.desired,
        "heartbeat": state.heartbeat.isoformat() if state.heartbeat else None,
        "last_bar_time": state.last_bar_time.isoformat() if state.last_bar_time else None,
        "rule_id": state.run_rule_id,
        "watchlist_id": state.run_watchlist_id,
    }


@login_not_required
@require_GET
def api_engine(request):
    """``GET /api/engine/``: the engine's state (session or feed token)."""
    if not api_authorized(request):
        return api_error(403, "Send the feed token as 'Authorization: Bearer <token>'.")
    return JsonResponse(engine_status(engine_state_get()))
