"""Engine pages: the dashboard / control panel."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from engine.services import engine_state_get, settings_get
from watchlists.services import watchlist_get_active


@require_GET
def dashboard(request):
    context = {
        "engine": engine_state_get(),
        "settings": settings_get(),
        "watchlist": watchlist_get_active(),
    }
    return render(request, "engine/dashboard.html", context)
