"""URLs of the watchlist page and its actions."""

from django.urls import path

from watchlists import views

app_name = "watchlists"

urlpatterns = [
    path("", views.watchlist_list, name="list"),
    path("new/", views.watchlist_create_view, name="create"),
    path("symbols/understand/", views.symbols_understood, name="understand"),
    path("<int:pk>/rename/", views.watchlist_rename_view, name="rename"),
    path("<int:pk>/symbols/add/", views.symbol_add, name="symbol-add"),
    path("<int:pk>/symbols/remove/", views.symbol_remove, name="symbol-remove"),
    path("<int:pk>/activate/", views.watchlist_activate_view, name="activate"),
    path("<int:pk>/delete/", views.watchlist_delete_view, name="delete"),
]
