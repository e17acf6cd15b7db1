"""The settings page (being built: see issue 6)."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from engine.services import settings_get


@require_GET
def settings_page(request):
    return render(request, "settings/settings.html", {"settings": settings_get()})
