"""Storage and security defaults from settings."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from engine.models import new_token
from scalpsite import limits


def test_sqlite_runs_in_wal_with_immediate_transactions_and_a_busy_timeout(db):
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 20_000
    assert connection.transaction_mode == "IMMEDIATE"
    assert str(settings.DATABASES["default"]["NAME"]).endswith(".sqlite3")
    assert not connection.is_in_memory_db()


def test_local_only_defaults():
    assert settings.ALLOWED_HOSTS[:3] == ["127.0.0.1", "localhost", "[::1]"]
    assert settings.USE_TZ and settings.TIME_ZONE == "UTC"
    assert settings.INSTALLED_APPS[0] == "daphne"
    assert "django.contrib.auth.middleware.LoginRequiredMiddleware" in settings.MIDDLEWARE
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "scalpsite.layers.LocalChannelLayer"
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["group_expiry"] > 365 * 86400


@pytest.mark.django_db
def test_pages_and_admin_require_login(client):
    for url in ["/", "/admin/"]:
        resp = client.get(url)
        assert resp.status_code == 302
        assert "login" in resp["Location"]


@pytest.mark.django_db
def test_dashboard_shows_the_active_rule_and_watchlist(admin_client):
    page = admin_client.get("/").content.decode()
    assert "PRICE &gt; MA5 AND MA5 &gt; MA10" in page
    assert "AAPL MSFT NVDA SPY TSLA" in page


@pytest.mark.django_db
def test_unknown_page_is_a_plain_404(admin_client):
    resp = admin_client.get("/no/such/page/")
    assert resp.status_code == 404
    assert "Traceback" not in resp.content.decode()


def test_check_deploy_has_no_unexplained_warnings():
    # Raises SystemCheckError on any warning not reviewed in docs/security.md.
    call_command("check", "--deploy", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_htmx_request_after_the_session_expired_redirects_the_whole_page(client):
    resp = client.post(
        "/rules/builder/text/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/rules/new/?x=1"},
    )
    assert resp.status_code == 204
    assert resp["HX-Redirect"] == "/accounts/login/?next=%2Frules%2Fnew%2F%3Fx%3D1"
    plain = client.get("/rules/")
    assert plain.status_code == 302 and plain.url.startswith("/accounts/login/")


def test_new_tokens_are_safe_as_command_line_arguments():
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(len(t) == 64 and t[0] != "-" and set(t) <= set("0123456789abcdef") for t in tokens)


def test_django_reads_no_more_form_data_than_the_transport_accepts():
    # Form fields (files excluded) beyond the general body limit are refused by Django too.
    assert limits.DEFAULT.size == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limits.UPLOAD.size < 2 * limits.MAX_UPLOAD_BYTES
