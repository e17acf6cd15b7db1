"""Outcomes where a trader reads them: REST, the CSV export, the Signals page (columns,
chart link, statistics), the dashboard's live rows, the rules list and a rule's page."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from engine.core.outcomes import Outcome as CoreOutcome
from engine.services import settings_update
from signals import realtime, views
from signals.services import outcomes_record, signal_record
from tests.factories import make_rule

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 12, 16, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_horizons():
    realtime.reset_for_tests()
    yield
    realtime.reset_for_tests()


@pytest.fixture
def client():
    user = get_user_model().objects.create_user("trader", password="s3cret-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def make(n: int, *, at=None, rule_id=1, symbol="AAPL", outs=None, side=""):
    signal = signal_record(
        time=at or T0 + timedelta(seconds=5 * n), symbol=symbol, price=100.0 + n,
        rule_id=rule_id, rule_name=f"Rule {rule_id}", bar_seconds=5, values={}, side=side,
    )  # fmt: skip
    outcomes_record([(signal.id, CoreOutcome(h, *v)) for h, v in (outs or {}).items()])
    return signal


def text(response) -> str:
    return html.unescape(response.content.decode())


def test_rest_items_carry_an_outcomes_object_per_configured_horizon(client):
    done = make(1, outs={60: (0.25, 0.5, -0.125), 300: (None, None, None)})
    fresh = make(2)
    body = client.get("/api/signals/").json()
    by_id = {item["id"]: item for item in body["signals"]}
    assert by_id[done.id]["outcomes"] == {
        "1m": {"return_pct": 0.25, "mfe_pct": 0.5, "mae_pct": -0.125},
        "5m": {"return_pct": None, "mfe_pct": None, "mae_pct": None},
        "15m": None,
    }
    assert by_id[fresh.id]["outcomes"] == {"1m": None, "5m": None, "15m": None}
    # The keys follow the setting; an outcome stored at a horizon no longer configured stays.
    settings_update(outcome_horizons="30s,1h")
    realtime.reset_for_tests()
    body = client.get("/api/signals/").json()
    assert list(body["signals"][0]["outcomes"]) == ["30s", "1h", "1m", "5m"]


def test_csv_export_adds_outcome_columns_at_the_end(client):
    make(1, outs={60: (0.25, 0.5, -0.125), 300: (None, None, None)})
    make(2, side="sell")
    response = client.get("/signals/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [*views.CSV_HEADER,
                       "return_1m_pct", "mfe_1m_pct", "mae_1m_pct",
                       "return_5m_pct", "mfe_5m_pct", "mae_5m_pct",
                       "return_15m_pct", "mfe_15m_pct", "mae_15m_pct"]  # fmt: skip
    old = len(views.CSV_HEADER)
    assert rows[1][old:] == ["0.25", "0.5", "-0.125", "", "", "", "", "", ""]
    assert rows[2][old - 1 :] == ["sell", *[""] * 9]


def test_the_signals_page_has_outcome_columns_a_chart_link_and_lazy_stats(client):
    done = make(1, outs={60: (0.25, 0.5, -0.125)})
    make(2, outs={60: (-0.5, 0.1, -0.6)}, symbol="MSFT")
    page = text(client.get("/signals/"))
    assert re.findall(r'<th scope="col"[^>]*title="Return (\w+) after', page) == ["1m", "5m", "15m"]
    cell = re.search(rf'<span id="outcome-{done.id}-1m"[^>]*>[^<]*</span>', page, re.S)[0]
    assert "+0.25%" in cell and "text-emerald-300" in cell
    assert "return +0.250% · MFE +0.500% · MAE −0.125%" in cell
    assert f'id="outcome-{done.id}-5m"' in page and "not final yet" in page
    assert f'href="/bars/signal/{done.id}/"' in page
    assert 'data-testid="stats-loading"' in page and "stats-table" not in page
    url = re.search(r'hx-get="([^"]+)"', page)[1]
    assert url == "/signals/?stats=1"
    part = text(client.get(url, headers={"HX-Request": "true", "HX-Target": "signal-stats"}))
    assert part.startswith('<div id="signal-stats">') and "<nav" not in part
    assert re.findall(r'data-testid="hit-rate">([^<]*)<', part)[:3] == ["50%", "—", "—"]
    assert 'aria-label="Distribution of 1m returns over 2 outcomes"' in part
    # Filtered (and without JavaScript: the whole page with the statistics in it).
    full = text(client.get("/signals/", {"symbol": "msft", "stats": "1"}))
    assert 'id="signal-stats"' in full and "every signal these filters match" in full
    assert re.findall(r'data-testid="hit-rate">([^<]*)<', full)[0] == "0%"
    assert re.findall(r'data-testid="stats-symbol"', full) and "MSFT" in full


def test_dashboard_rows_show_stored_outcomes_and_wait_for_the_rest(client):
    done = make(1, outs={60: (0.0, 0.1, -0.1), 300: (None, None, None)})
    page = text(client.get("/"))
    row = re.search(rf'<li id="signal-{done.id}".*?</li>', page, re.S)[0]
    cells = re.findall(r'data-horizon="(\w+)" data-final="(\d)"', row)
    assert cells == [("1m", "1"), ("5m", "1"), ("15m", "0")]
    assert "0.00%" in row and "no bar closed in the window" in row and "…" in row


def test_rules_list_and_rule_page_show_hit_rates_over_a_period(client):
    rule = make_rule("Breakout")
    now = timezone.now()
    make(1, at=now - timedelta(minutes=3), rule_id=rule.pk, outs={60: (0.3, 0.4, 0.0)})
    make(2, at=now - timedelta(minutes=2), rule_id=rule.pk, outs={60: (-0.1, 0.0, -0.2)})
    make(3, at=now - timedelta(minutes=1), rule_id=rule.pk, outs={60: (0.2, 0.2, 0.0)})
    make(4, at=now - timedelta(days=10), rule_id=rule.pk, outs={60: (-1.0, 0.0, -1.0)})
    page = text(client.get("/rules/"))
    cell = re.search(rf'<tr data-rule="{rule.pk}".*?data-testid="rule-hit-rate">(.*?)</td>', page,
                     re.S)[1]  # fmt: skip
    # The default period is 30 days: all four.
    assert re.sub(r"<[^>]+>|\s+", " ", cell).split() == ["Hit", "rate", "50%", "of", "4", "·", "1m"]

    def hit_rate(**params) -> str:
        page = text(client.get("/rules/", params))
        cell = page[page.index(f'<tr data-rule="{rule.pk}"') :]
        return re.search(r'data-testid="rule-hit-rate">.*?>(\d+%)<', cell, re.S)[1]

    assert hit_rate(period="7d") == "67%"
    assert hit_rate(period="bogus\x00") == "50%"  # anything else reads as the default
    assert 'aria-current="true">7 days' in text(client.get("/rules/", {"period": "7d"}))
    # An Active toggle (htmx) redraws the table for the period the page shows.
    toggled = client.post(f"/rules/{rule.pk}/active/", {"active": "1", "period": "7d"},
                          headers={"HX-Request": "true"})  # fmt: skip
    assert ">67%<" in text(toggled) and 'name="period" value="7d"' in text(toggled)
    edit = text(client.get(f"/rules/{rule.pk}/edit/", {"period": "all"}))
    stats = edit[edit.index('id="rule-stats"') :]
    assert re.findall(r'data-testid="hit-rate">([^<]*)<', stats)[:2] == ["50%", "—"]
    assert 'aria-label="Distribution of 1m returns over 4 outcomes"' in stats
    assert f'href="/signals/?rule={rule.pk}"' in stats
