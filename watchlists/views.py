"""Watchlist pages (being built: see issue 6)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from watchlists.models import Watchlist


@require_GET
def watchlist_list(request):
    return render(request, "watchlists/list.html", {"watchlists": Watchlist.objects.all()})
