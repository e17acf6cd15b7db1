"""The control panel's views: Start/Stop through the services, pickers locked while a run
holds them, the polled status."""

import pytest
from django.test import Client

from engine.models import EngineState
from engine.services import engine_state_get, settings_get
from tests.factories import make_rule, make_running_engine, make_watchlist
from tests.signals.helpers import make_signal

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def test_dashboard_shows_status_rule_watchlist_tiles_and_recent_signals(admin_client):
    rows = [make_signal(n, symbol=s) for n, s in enumerate(["AAPL", "MSFT", "AAPL"], start=1)]
    page = admin_client.get("/").content.decode()
    assert "PRICE &gt; MA5 AND MA5 &gt; MA10" in page
    for symbol in ("AAPL", "MSFT", "NVDA", "SPY", "TSLA"):
        assert f'id="tile-{symbol.lower()}"' in page
    assert page.index(f'id="signal-{rows[2].id}"') < page.index(f'id="signal-{rows[0].id}"')
    assert f'data-last-id="{rows[2].id}"' in page
    assert 'ws-connect="/ws/ui/"' in page
    assert "Offline" in page  # no worker heartbeat in this test


def test_pages_need_login_and_posts_need_csrf(client, admin_user):
    assert client.get("/").status_code == 302
    assert client.post("/engine/start/").status_code == 302
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin_user)
    assert csrf.post("/engine/start/").status_code == 403
    assert engine_state_get().desired == EngineState.Desired.STOPPED


def test_start_and_stop_set_the_desired_state(admin_client):
    resp = admin_client.post("/engine/start/", headers=HTMX)
    assert resp.status_code == 200 and 'id="engine-controls"' in resp.content.decode()
    assert engine_state_get().desired == EngineState.Desired.RUNNING
    admin_client.post("/engine/stop/", headers=HTMX)
    assert engine_state_get().desired == EngineState.Desired.STOPPED


def test_start_refused_with_an_empty_watchlist_says_why(admin_client):
    make_watchlist("Empty", symbols=[], activate=True)
    page = admin_client.get("/").content.decode()
    assert "The watchlist “Empty” is empty: add a symbol first." in page
    assert "No symbols to watch yet" in page
    resp = admin_client.post("/engine/start/", headers=HTMX).content.decode()
    assert 'role="alert"' in resp and "is empty: add a symbol first" in resp
    assert engine_state_get().desired == EngineState.Desired.STOPPED
    # Without htmx: back to the dashboard with the sentence as a message.
    resp = admin_client.post("/engine/start/", follow=True)
    assert "is empty: add a symbol first" in resp.content.decode()


def test_pickers_switch_the_active_rule_and_watchlist(admin_client):
    rule = make_rule("Mine")
    watchlist = make_watchlist("Tech")
    resp = admin_client.post("/engine/choose/", {"rule": rule.pk}, headers=HTMX)
    assert resp.status_code == 200 and resp["HX-Refresh"] == "true"
    admin_client.post("/engine/choose/", {"watchlist": watchlist.pk}, headers=HTMX)
    assert settings_get().active_rule_id == rule.pk
    watchlist.refresh_from_db()
    assert watchlist.is_active
    assert admin_client.post("/engine/choose/", {"rule": "nope"}).status_code == 404


def test_pickers_are_locked_while_the_engine_runs(admin_client):
    system = settings_get().active_rule
    make_running_engine(rule=system, watchlist=make_watchlist("Run", activate=True))
    page = admin_client.get("/").content.decode()
    assert page.count("disabled") >= 2 and "Locked while the engine runs." in page
    assert 'data-testid="stop"' in page and 'data-testid="start"' not in page
    other = make_rule("Other")
    resp = admin_client.post("/engine/choose/", {"rule": other.pk}, headers=HTMX)
    assert "The engine is running: stop it before switching the active rule." in (
        resp.content.decode()
    )
    assert settings_get().active_rule_id == system.pk
    assert "already running" in admin_client.post("/engine/start/", headers=HTMX).content.decode()


def test_polled_status_asks_for_a_redraw_only_when_the_state_changed(admin_client):
    same = admin_client.get("/engine/status/?known=offline").content.decode()
    assert 'data-state="offline"' in same and "engine-refresh" not in same
    changed = admin_client.get("/engine/status/?known=running").content.decode()
    assert 'id="engine-refresh" hx-swap-oob="true"' in changed
