"""The engine events log: one line per state the worker reports, the newest 500 kept, read-only
in the admin, the newest 20 on the dashboard (live through the polled status card and the
controls a status event fetches), and each item's stream on its tile and in the REST status."""

from __future__ import annotations

import html
import re
import time

import pytest
from django.utils import timezone

from engine.models import EngineEvent, EngineState
from engine.services import (
    ENGINE_EVENTS_KEPT,
    engine_events_latest,
    worker_recover,
    worker_report,
)
from rules.models import Rule
from tests.factories import make_running_engine, make_watchlist

pytestmark = pytest.mark.django_db

LOST = "IB lost connection to its servers (1100); waiting for it to come back."
BACK = "IB restored the connection (1102): data kept, no resubscription needed."


def lines(page: str) -> list[str]:
    """The dashboard log's lines as text, in page order."""
    box = re.search(r'<ol [^>]*data-testid="engine-events">(.*?)</ol>', page, re.S)
    assert box, "no engine log"
    items = re.findall(r"<li [^>]*data-testid=\"engine-event\"[^>]*>(.*?)</li>", box[1], re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", item)).split()) for item in items]


def test_each_report_is_one_line_of_the_story_and_recovery_is_told():
    worker_recover(pid=123)
    worker_report(state="connecting", message="Connecting to TWS at 127.0.0.1:7497…")
    worker_report(state="running", message=LOST, symbol="ES:FUT:CME")
    worker_report(state="running", message=BACK)
    make_running_engine(rule=Rule.objects.get(is_system=True))  # killed mid-run: locked…
    worker_recover(pid=124)  # …the next one says so
    story = [(e.state, e.message, e.symbol) for e in engine_events_latest(10)]
    assert story == [
        ("idle", "Engine ready. Press Start to scan.", ""),
        ("connecting", "Connecting to TWS at 127.0.0.1:7497…", ""),
        ("running", LOST, "ES:FUT:CME"),
        ("running", BACK, ""),
        ("idle", "Recovered from a worker that stopped without cleaning up; its locks are "
                 "released.", ""),
    ]  # fmt: skip
    assert [e.message for e in engine_events_latest(2)] == [BACK, story[-1][1]]
    state = EngineState.objects.get(pk=1)
    assert (state.state, state.message) == ("idle", story[-1][1])


def test_the_newest_500_lines_are_kept():
    stamp = timezone.now()
    EngineEvent.objects.bulk_create(
        EngineEvent(time=stamp, state="running", message=f"line {n}") for n in range(1, 550)
    )
    assert EngineEvent.objects.count() == 549  # pruned every 50 inserts, not on each
    worker_report(state="running", message="line 550")
    assert EngineEvent.objects.count() == ENGINE_EVENTS_KEPT == 500
    assert EngineEvent.objects.order_by("id").first().message == "line 51"
    assert engine_events_latest(1)[0].message == "line 550"


def test_a_very_long_sentence_is_cut_in_the_log_and_kept_whole_in_the_state():
    worker_report(state="error", message="x" * 10_000)
    assert len(engine_events_latest(1)[0].message) == 2000
    assert len(EngineState.objects.get(pk=1).message) == 10_000


def test_the_admin_lists_the_log_read_only(admin_client):
    worker_report(state="running", message=LOST)
    listing = admin_client.get("/admin/engine/engineevent/")
    assert listing.status_code == 200 and LOST in html.unescape(listing.content.decode())
    assert admin_client.get("/admin/engine/engineevent/add/").status_code == 403
    event = EngineEvent.objects.get()
    change = admin_client.post(f"/admin/engine/engineevent/{event.pk}/change/", {"message": "x"})
    assert change.status_code == 403
    assert admin_client.post(f"/admin/engine/engineevent/{event.pk}/delete/").status_code == 403
    assert EngineEvent.objects.get().message == LOST


def test_the_dashboard_tells_the_newest_20_lines_oldest_first_escaped(admin_client):
    page = admin_client.get("/").content.decode()
    assert 'data-testid="engine-events-empty"' in page and lines(page) == []
    for n in range(1, 26):
        worker_report(state="running", message=f"line {n}")
    worker_report(state="error", message="<script>alert(1)</script> TWS said no.")
    page = admin_client.get("/").content.decode()
    shown = lines(page)
    assert len(shown) == 20
    assert [line.split(" ", 2)[2] for line in shown[:2]] == ["line 7", "line 8"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d UTC <script>alert\(1\)</script> TWS said no\.", shown[-1])
    assert "<script>alert(1)</script>" not in page
    newest = EngineEvent.objects.order_by("-id").first()
    assert f'data-last-event-id="{newest.pk}"' in page


def test_the_polled_status_sends_the_log_only_when_it_has_a_new_line(admin_client):
    worker_report(state="running", message=LOST)
    known = EngineEvent.objects.get().pk
    quiet = admin_client.get(f"/engine/status/?known=running&events={known}").content.decode()
    assert 'id="engine-events"' not in quiet
    worker_report(state="running", message=BACK)
    fresh = admin_client.get(f"/engine/status/?known=running&events={known}").content.decode()
    assert '<section id="engine-events" hx-swap-oob="true"' in fresh
    assert [line.split(" ", 2)[2] for line in lines(fresh)] == [LOST, BACK]
    assert f'data-last-event-id="{known + 1}"' in fresh  # what the next poll sends
    # A page that doesn't say (no script yet) gets the log.
    assert 'id="engine-events"' in admin_client.get("/engine/status/").content.decode()


def test_the_controls_a_live_status_event_fetches_bring_the_log(admin_client):
    worker_report(state="reconnecting", message=LOST)
    controls = admin_client.get("/engine/controls/").content.decode()
    assert '<section id="engine-events" hx-swap-oob="true"' in controls
    assert lines(controls)[-1].endswith(LOST)
    assert 'data-state="reconnecting"' in controls


# --- each item's stream on its tile and in the REST status ------------------------------------


def test_tiles_show_each_items_stream_and_the_api_has_it(admin_client, monkeypatch):
    now = 1_765_894_200.0
    # The worker's clock, stopped at `now` (SCALP_TEST_CLOCK's speed is tiny): "stale 42 s".
    monkeypatch.setenv("SCALP_TEST_CLOCK", f"{time.time()},{now},0.000001")
    watchlist = make_watchlist(
        name="Day", symbols=["ES:FUT:CME", "AAPL", "EURUSD:CASH", "MSFT", "SPY"], activate=True
    )
    state = make_running_engine(rule=Rule.objects.get(is_system=True), watchlist=watchlist)
    es = {"local_symbol": "ESZ6", "sec_type": "FUT", "exchange": "CME", "currency": "USD",
          "min_tick": 0.25}  # fmt: skip
    state.symbols = {
        "ES:FUT:CME": {"contract": es, "open": True, "market": "trading (CME Globex)",
                       "stream": "streaming", "stream_reason": "", "stream_since": now - 600},
        "AAPL": {"contract": None, "open": True, "market": "trading (NASDAQ)",
                 "stream": "stale", "stream_reason": "no bar for 42 s", "stream_since": now - 42},
        "EURUSD:CASH": {"contract": None, "open": False, "market": "closed",
                        "stream": "closed", "stream_reason": "", "stream_since": now - 9000},
        "MSFT": {"contract": None, "open": True, "market": "trading (NASDAQ)",
                 "stream": "refused", "stream_reason": "<b>10197</b> competing live session",
                 "stream_since": now - 5},
        "SPY": {"contract": None, "open": None, "market": "", "stream": None,
                "stream_reason": "", "stream_since": None},
    }  # fmt: skip
    state.save()

    def stream_of(page: str, slug: str) -> tuple[str, str] | None:
        tile = re.search(rf'<p id="tile-{slug}-market".*?</p>', page, re.S)
        assert tile, slug
        found = re.search(r'data-stream="([^"]*)">(.*?)</span>', tile[0])
        return (found[1], html.unescape(found[2])) if found else None

    for page in (
        admin_client.get("/").content.decode(),
        admin_client.get("/engine/status/").content.decode(),  # the polled refresh
    ):
        assert stream_of(page, "esfutcme") == ("streaming", "streaming")
        assert stream_of(page, "aapl") == ("stale", "stale 42 s")
        assert stream_of(page, "eurusdcash") == ("closed", "closed")
        assert stream_of(page, "msft") == (
            "refused",
            "refused: <b>10197</b> competing live session",
        )
        assert stream_of(page, "spy") is None
        assert "<b>10197</b>" not in page
        assert re.search(r'data-stream="streaming">streaming</span> · <span[^>]*>ESZ6</span>', page)

    status = admin_client.get("/api/engine/").json()
    assert status["symbols"]["AAPL"]["stream"] == "stale"
    assert status["symbols"]["AAPL"]["stream_reason"] == "no bar for 42 s"
    assert status["symbols"]["AAPL"]["stream_since"] == now - 42
    assert status["symbols"]["SPY"]["stream"] is None
    assert set(status["symbols"]["MSFT"]) >= {"stream", "stream_reason", "stream_since"}


NOW = 100_000.0


@pytest.mark.parametrize(
    ("since", "line"),
    [(NOW - 5, "stale 5 s"), (NOW - 119.9, "stale 119 s"), (NOW - 120, "stale 2 min"),
     (NOW - 7260, "stale 2 h 1 min"), (NOW + 5, "stale 0 s"), ("soon", "stale"),
     (float("nan"), "stale"), (True, "stale"), (None, "stale")],
)  # fmt: skip
def test_a_stale_items_silence_reads_in_seconds_minutes_or_hours(since, line):
    from engine.panel.dashboard import stream_line

    assert stream_line({"stream": "stale", "stream_since": since}, NOW) == line
    assert stream_line({"stream": "gone fishing"}, NOW) == ""
    assert stream_line({"stream": "refused", "stream_reason": 42}, NOW) == "refused"


def test_the_api_gives_every_item_the_stream_keys_even_when_the_worker_did_not(admin_client):
    state = make_running_engine(rule=Rule.objects.get(is_system=True))
    state.symbols = {"AAPL": {"contract": None, "open": True, "market": "trading (NASDAQ)"}}
    state.save()
    item = admin_client.get("/api/engine/").json()["symbols"]["AAPL"]
    assert item == {"contract": None, "open": True, "market": "trading (NASDAQ)",
                    "stream": None, "stream_reason": "", "stream_since": None}  # fmt: skip
    EngineState.objects.filter(pk=1).update(run_started=None)
    assert admin_client.get("/api/engine/").json()["symbols"] == {}
