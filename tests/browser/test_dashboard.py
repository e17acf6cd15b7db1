"""The control panel in real Chromium with a real Daphne and the real worker (csv feed):
Start, a status change, the engine log's lines and signals arriving live without a reload,
the watchlist picker and the active rules locked while running, Stop with a confirmation."""

import re

import pytest

from engine.services import settings_update
from signals.models import Signal
from tests.browser.helpers import log_in
from tests.conftest import Daphne, free_port
from tests.engine.helpers import start_worker, stop_worker, write_bars, zigzag_rows
from tests.signals.helpers import make_signal
from watchlists.services import watchlist_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = 1_765_894_200  # 2025-12-16 14:10:00 UTC


def test_start_shows_status_and_signals_live_then_stop(live_daphne, page, artifacts_dir, tmp_path):
    rows = sorted(
        zigzag_rows("AAPL", 190.0, 400, start=T0) + zigzag_rows("MSFT", 410.0, 400, start=T0),
        key=lambda r: r[0],
    )
    settings_update(feed="csv", csv_path=str(write_bars(tmp_path / "bars.csv", rows)))
    worker = start_worker(
        "--speed", "10", log_path=tmp_path / "worker.log", SCALP_WEB_URL=live_daphne
    )
    try:
        log_in(page, live_daphne)
        state = page.get_by_test_id("engine-state")
        state.filter(has_text="Idle").wait_for(timeout=20_000)
        page.get_by_test_id("live-indicator").filter(has_text="live").wait_for()
        assert page.get_by_test_id("tiles").get_by_role("article").count() == 5
        page.screenshot(path=artifacts_dir / "dashboard-idle.png", full_page=True)
        page.evaluate("window.__notReloaded = true")

        # The engine log tells the story so far: the worker's start.
        log = page.get_by_test_id("engine-event")
        assert "Engine ready. Press Start to scan." in log.last.inner_text()
        page.get_by_test_id("start").click()
        state.filter(has_text="Running").wait_for(timeout=20_000)
        # …and its next lines arrive live: the run's start and its scanning, newest last.
        page.locator('[data-testid="engine-event"][data-state="running"]').first.wait_for(
            timeout=20_000
        )
        assert log.count() >= 3
        assert re.fullmatch(r"\d\d:\d\d:\d\d", log.last.locator("time").inner_text())
        # The 5-second poll names the newest line shown: the log is resent only when it grew.
        with page.expect_request(lambda r: "/engine/status/" in r.url, timeout=10_000) as poll:
            pass
        newest = int(page.locator("#engine-events").get_attribute("data-last-event-id"))
        sent = re.search(r"[?&]events=(\d+)", poll.value.url)
        assert sent and 0 < int(sent[1]) <= newest, poll.value.url
        first_row = page.locator("#live-signals .signal-row").first
        first_row.wait_for(timeout=30_000)
        assert page.evaluate("window.__notReloaded") is True, "the page must not reload"
        newest = Signal.objects.order_by("-id").first()
        assert newest is not None
        row_symbol = first_row.get_attribute("data-symbol")
        assert row_symbol in ("AAPL", "MSFT")
        tile = page.locator(f"#tile-{row_symbol.lower()}")
        assert tile.get_by_test_id("last-price").inner_text() != "–"
        assert "last signal" in tile.get_by_test_id("tile-last-signal").inner_text()
        assert page.locator(f'.tile-chart[data-chart-symbol="{row_symbol}"] canvas').count() > 0
        # While running the watchlist picker and the active rules are locked and say why;
        # Start is replaced by Stop. (The active rules are changed on the Rules page.)
        page.get_by_test_id("stop").wait_for()
        assert page.get_by_test_id("pick-watchlist").is_disabled()
        assert "stop it" in page.get_by_test_id("pick-watchlist").get_attribute("title")
        assert page.get_by_test_id("active-rule").count() == 1
        assert "locked while the engine runs" in page.locator("#engine-controls").inner_text()
        page.screenshot(path=artifacts_dir / "dashboard-running.png", full_page=True)

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("stop").click()
        state.filter(has_text="Idle").wait_for(timeout=20_000)
        page.get_by_test_id("start").wait_for()
        assert page.get_by_test_id("pick-watchlist").is_enabled()
        assert page.get_by_test_id("change-rules").inner_text() == "Change them on the Rules page"
        shown = {int(i) for i in page.locator("#live-signals .signal-row").evaluate_all(
            "rows => rows.map(r => r.dataset.signalId)")}  # fmt: skip
        stored = set(Signal.objects.values_list("id", flat=True)[:200])
        assert shown and shown <= stored
        assert page.evaluate("window.__notReloaded") is True
        page.screenshot(path=artifacts_dir / "dashboard-stopped.png", full_page=True)
    finally:
        stop_worker(worker)


def test_empty_watchlist_disables_start_with_a_reason(live_daphne, page, artifacts_dir):
    watchlist_create(name="Empty", symbols=[], activate=True)
    log_in(page, live_daphne)
    start = page.get_by_test_id("start")
    assert start.is_disabled()
    assert "is empty" in start.get_attribute("title")
    assert page.get_by_text("No symbols to watch yet").is_visible()
    page.screenshot(path=artifacts_dir / "dashboard-empty.png", full_page=True)


def test_the_page_reconnects_after_a_daphne_restart_and_catches_up(page, artifacts_dir, tmp_path):
    daphne = Daphne(free_port(), (tmp_path / "daphne.log").open("w"))
    daphne.start()
    base = f"http://127.0.0.1:{daphne.port}"
    try:
        log_in(page, base)
        indicator = page.get_by_test_id("live-indicator")
        indicator.filter(has_text="live").wait_for()
        page.evaluate("window.__notReloaded = true")
        daphne.stop()
        indicator.filter(has_text="interrupted").wait_for(timeout=10_000)
        missed = make_signal(1, symbol="NVDA")  # stored while the page had no socket
        page.screenshot(path=artifacts_dir / "dashboard-reconnecting.png")
        daphne.start()
        indicator.filter(has_text=re.compile("^live$")).wait_for(timeout=30_000)
        page.locator(f"#signal-{missed.id}").wait_for(timeout=10_000)
        assert "last signal" in page.get_by_test_id("tile-last-signal").nth(2).inner_text()
        assert page.evaluate("window.__notReloaded") is True
    finally:
        daphne.stop()
