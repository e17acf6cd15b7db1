"""The Backtest page over IB history: the page asks for a run, the worker's runner downloads
from the fake TWS (its own client id, a pacing refusal waited out, an unknown symbol a
sentence while the other goes on), stores the bars and tests the rules over them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from backtests import runner
from backtests.models import BacktestRun
from bars.services import bars_span
from engine.services import settings_update
from tests.engine.feeds.support import make_bars
from tests.factories import logged_in_client, make_rule

HOUR = 3600


@pytest.mark.django_db
def test_backtest_page_over_fake_tws_history_with_a_pacing_refusal(fake_tws):
    now = int(time.time())
    t0 = now - now % 60 - HOUR  # 1-minute history: the three hours before t0
    rows = make_bars(t0 - 3 * HOUR, 180, seconds=60, price=100.0, step=0.05)
    fake_tws.add_symbol("AAPL", con_id=265598, history={60: rows})
    fake_tws.refuse_history(1)  # IB refuses the first history request (pacing)
    settings_update(ib_host="127.0.0.1", ib_port=fake_tws.port, ib_client_id=17)
    rule = make_rule()
    client = logged_in_client()
    day = datetime.fromtimestamp(t0, UTC).date()
    response = client.post(
        "/backtest/start/",
        {"rules": [rule.pk], "symbols": "AAPL, ZZZZ", "start": str(day - timedelta(days=1)),
         "end": str(day), "source": "ib", "horizons": "5m,15m", "bar_seconds": "60"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    run = BacktestRun.objects.get()

    assert runner.run_next() == run.pk  # what the worker's runner does with it
    run.refresh_from_db()
    assert run.state == "done", run.error
    assert any("IB asked us to slow down" in n and "waiting 15 s" in n for n in run.notices)
    assert any(n.startswith("ZZZZ:") and "other symbols go on" in n for n in run.notices)
    assert run.symbols == ["AAPL"] and run.bars == len(rows)
    first, last, count = bars_span("AAPL", 60)
    assert (first, last, count) == (rows[0][0], rows[-1][0], len(rows))  # cached in the store
    assert fake_tws.pacing_violations() == []
    assert {r["bar_size"] for r in fake_tws.history_log} == {"1 min"}
    assert run.signal_count > 0  # an uptrend: the default rule fires

    page = client.get(f"/backtest/{run.pk}/").content.decode()
    assert 'data-testid="stats-row"' in page and "IB asked us to slow down" in page
    assert "117" in client.get("/backtest/").content.decode()  # the download's client id
