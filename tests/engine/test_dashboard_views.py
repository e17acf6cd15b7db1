"""The control panel's views: Start/Stop through the services, the active rules listed and
the watchlist picker locked while a run holds them, the polled status, the tiles' live parts."""

import re

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone

from engine.models import EngineState
from engine.services import engine_state_get
from rules.models import Rule
from rules.services import rule_set_active
from signals import events, realtime
from signals.services import signal_record
from tests.factories import DEFAULT_DEFINITION, make_rule, make_running_engine, make_watchlist
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


def test_the_watchlist_picker_switches_and_the_active_rules_are_listed(admin_client):
    """The seed's rule picker became the list of active rules (chosen on the Rules page);
    the watchlist picker stays."""
    system = Rule.objects.get(is_system=True)
    short = make_rule("Short", definition={**DEFAULT_DEFINITION, "side": "sell"})
    rule_set_active(rule=short, active=True)
    make_rule("Idle")
    page = admin_client.get("/").content.decode()
    assert 'data-testid="pick-rule"' not in page
    assert 'data-testid="active-rules-count">2 of 10<' in page
    listed = re.findall(
        r'<li class="min-w-0" data-rule-id="(\d+)" data-testid="active-rule">', page
    )
    assert listed == [str(system.pk), str(short.pk)]
    assert 'data-side="sell"' in page and "Idle" not in page
    assert re.search(r'<a [^>]*href="/rules/" data-testid="change-rules">Change them', page)

    watchlist = make_watchlist("Tech")
    resp = admin_client.post("/engine/choose/", {"watchlist": watchlist.pk}, headers=HTMX)
    assert resp.status_code == 200 and resp["HX-Refresh"] == "true"
    watchlist.refresh_from_db()
    assert watchlist.is_active
    assert admin_client.post("/engine/choose/", {"watchlist": "nope"}).status_code == 404


def test_no_active_rule_blocks_start_with_a_reason(admin_client):
    rule_set_active(rule=Rule.objects.get(is_system=True), active=False)
    page = admin_client.get("/").content.decode()
    assert "No active rule: the engine has nothing to scan with." in page
    assert "Activate at least one rule first." in page
    assert re.search(r'<button type="button" hx-post="/engine/start/"[^>]*\sdisabled\s', page)


def test_pickers_are_locked_while_the_engine_runs(admin_client):
    system = Rule.objects.get(is_system=True)
    make_running_engine(rule=system, watchlist=make_watchlist("Run", activate=True))
    page = admin_client.get("/").content.decode()
    assert re.search(r'<select id="pick-watchlist"[^>]*\sdisabled\s', page)
    assert "Locked while the engine runs." in page
    assert "See the rules</a> · locked while the engine runs" in page
    assert 'data-testid="stop"' in page and 'data-testid="start"' not in page
    other = make_watchlist("Other")
    resp = admin_client.post("/engine/choose/", {"watchlist": other.pk}, headers=HTMX)
    assert "The engine is running: stop it before switching the active watchlist." in (
        resp.content.decode()
    )
    other.refresh_from_db()
    assert not other.is_active
    assert "already running" in admin_client.post("/engine/start/", headers=HTMX).content.decode()


def test_each_tile_lists_every_active_rule_with_its_last_signal_there(admin_client):
    system = Rule.objects.get(is_system=True)
    short = make_rule("Short", definition={**DEFAULT_DEFINITION, "side": "sell"})
    rule_set_active(rule=short, active=True)
    make_signal(1, symbol="AAPL", rule_id=system.pk)
    newest = make_signal(2, symbol="AAPL", rule_id=short.pk, price=190.0)
    page = admin_client.get("/").content.decode()
    for symbol in ("aapl", "msft"):
        for rule in (system, short):
            assert f'id="tile-{symbol}-rule-{rule.pk}"' in page
            assert f'id="tile-{symbol}-rule-{rule.pk}-state"' in page
    last = re.search(rf'<span id="tile-aapl-rule-{short.pk}-last"[^>]*>(.*?)</span>\n', page, re.S)
    assert last and newest.to_event()["timestamp"] in last[1] and "190.02" in last[1]
    msft = re.search(rf'<span id="tile-msft-rule-{short.pk}-last"[^>]*>(.*?)</span>', page)
    assert msft and msft[1] == "no signal yet"


def test_a_bar_event_updates_each_rules_state_on_its_tile():
    """What signals.realtime sends the page sockets for a bar: the live part of the tile,
    and one out-of-band state per active rule (COOLDOWN with its countdown)."""
    bar = {
        "event": "bar", "symbol": "AAPL", "time": "2025-12-16T14:30:00Z", "open": 1.0,
        "high": 1.0, "low": 1.0, "close": 1.0, "volume": 0.0, "values": {"MA5": 1.0},
        "state": "WAIT", "cooldown_until": None,
        "rules": [
            {"rule_id": 1, "state": "WAIT", "cooldown_until": None},
            {"rule_id": 7, "state": "COOLDOWN", "cooldown_until": "2025-12-16T14:31:00Z"},
        ],
    }  # fmt: skip
    fragment = render_to_string("engine/partials/tile.html", {"bar": bar})
    wait = re.search(
        r'<span id="tile-aapl-rule-1-state" hx-swap-oob="true"[^>]*>(.*?)</span>', fragment
    )
    assert wait and wait[1] == "WAIT" and 'data-state="WAIT"' in wait[0]
    cooling = re.search(
        r'<span id="tile-aapl-rule-7-state" hx-swap-oob="true"[^>]*>(.*)</span>', fragment
    )
    assert cooling and cooling[1].startswith("COOLDOWN ")
    assert '<span class="js-countdown" data-until="2025-12-16T14:31:00Z">' in cooling[1]


@pytest.mark.parametrize(
    ("side", "badge"),
    [("buy", "BUY <span aria-hidden=\"true\">▲</span>"),
     ("sell", "SELL <span aria-hidden=\"true\">▼</span>"),
     (None, ">none</span>")],
)  # fmt: skip
def test_a_signal_event_shows_its_side_and_updates_its_rules_last_signal(side, badge):
    event = events.signal(
        id=42, symbol="AAPL", price=189.2, rule_id=7, rule_name="Scalp", close_time=1765895405,
        bar_seconds=5, values={}, side=side,
    )  # fmt: skip
    html = realtime.signal_html(event)
    row = re.search(r'<li id="signal-42".*?</li>', html, re.S)
    assert row and f'data-side="{side or ""}"' in row[0] and badge in row[0]
    last = re.search(r'<span id="tile-aapl-rule-7-last" hx-swap-oob="true"[^>]*>(.*)</span>', html)
    assert last and "2025-12-16T14:30:05Z" in last[1] and "189.2" in last[1]


def test_polled_status_asks_for_a_redraw_only_when_the_state_changed(admin_client):
    same = admin_client.get("/engine/status/?known=offline").content.decode()
    assert 'data-state="offline"' in same and "engine-refresh" not in same
    changed = admin_client.get("/engine/status/?known=running").content.decode()
    assert 'id="engine-refresh" hx-swap-oob="true"' in changed


def test_tiles_and_the_engine_card_show_each_items_contract_and_market_while_a_run_is_live(
    admin_client,
):
    watchlist = make_watchlist(
        name="Mixed", symbols=["ES:FUT:CME", "EURUSD:CASH", "AAPL"], activate=True
    )
    state = make_running_engine(rule=Rule.objects.get(is_system=True), watchlist=watchlist)
    es = {"local_symbol": "ESZ6", "sec_type": "FUT", "exchange": "CME", "currency": "USD",
          "min_tick": 0.25}  # fmt: skip
    state.symbols = {
        "ES:FUT:CME": {"contract": es, "open": True, "market": "trading (CME Globex)"},
        "EURUSD:CASH": {"contract": None, "open": False, "market": "closed, opens Sun 17:00 "
                        "America/New_York"},
    }  # fmt: skip
    state.save()
    signal_record(time=timezone.now(), symbol="ES:FUT:CME", price=6001.5, rule_id=1,
                  rule_name="MA Momentum", bar_seconds=5, values={}, contract=es)  # fmt: skip

    page = admin_client.get("/").content.decode()
    es_tile = re.search(r'<article id="tile-esfutcme".*?</article>', page, re.S)[0]
    assert re.search(
        r'data-testid="tile-local-symbol">ESZ6</span> · trading \(CME Globex\)', es_tile
    )
    assert 'data-open="true"' in es_tile
    assert ">6001.50</span>" in es_tile, "the price at the tick's precision"
    fx_tile = re.search(r'<article id="tile-eurusdcash".*?</article>', page, re.S)[0]
    assert "closed, opens Sun 17:00 America/New_York" in fx_tile and 'data-open="false"' in fx_tile
    markets = re.search(r'<ul id="engine-markets".*?</ul>', page, re.S)[0]
    lines = [" ".join(re.sub(r"<[^>]+>", " ", li).split()) for li in markets.split("</li>")]
    assert lines[:2] == [
        "ES:FUT:CME (ESZ6) — trading (CME Globex)",
        "EURUSD:CASH — closed, opens Sun 17:00 America/New_York",
    ]

    # The polled status card refreshes both, out of band; without a run they are cleared.
    polled = admin_client.get("/engine/status/").content.decode()
    assert '<ul id="engine-markets" hx-swap-oob="true"' in polled
    assert re.search(r'<p id="tile-esfutcme-market" hx-swap-oob="true"[^>]*>.*ESZ6', polled)
    EngineState.objects.filter(pk=1).update(run_started=None, state="idle")
    polled = admin_client.get("/engine/status/").content.decode()
    assert "trading (CME Globex)" not in polled
    assert re.search(r'<p id="tile-aapl-market" hx-swap-oob="true"[^>]*></p>', polled)
