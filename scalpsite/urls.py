"""Root URLs: pages of each app, login, admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

admin.site.site_header = "ScalpSignal admin"
admin.site.site_title = "ScalpSignal admin"

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("rules/", include("rules.urls")),
    path("watchlists/", include("watchlists.urls")),
    path("alerts/", include("alerts.urls")),
    path("backtest/", include("backtests.urls")),
    path("bars/", include("bars.urls")),
    path("", include("signals.urls")),
    path("", include("engine.panel.urls")),
]
