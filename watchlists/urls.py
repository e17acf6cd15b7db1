"""URLs of the watchlist pages."""

from django.urls import path

from watchlists import views

app_name = "watchlists"

urlpatterns = [
    path("", views.watchlist_list, name="list"),
]
