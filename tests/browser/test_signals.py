"""The signal history page in real Chromium against a real Daphne: local times, a filter, the
next page, a bad filter and the CSV export (streamed through the ASGI path)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from signals.services import signal_record
from signals.views import PAGE_SIZE
from tests.browser.helpers import log_in
from tests.factories import make_rule

pytestmark = pytest.mark.browser

T0 = datetime(2025, 12, 16, 14, 30, tzinfo=UTC)
ZONE = "Asia/Tokyo"  # UTC+9 all year (no DST): a local time that can't be mistaken for UTC


def make_signals(count: int, *, rule_id: int, rule_name: str) -> list:
    made = []
    for n in range(count):
        made.append(
            signal_record(
                time=T0 + timedelta(seconds=5 * n), symbol=("AAPL", "MSFT", "NVDA")[n % 3],
                price=round(189.2 + n / 100, 2), rule_id=rule_id, rule_name=rule_name,
                bar_seconds=5, values={"PRICE": 189.2},
            )
        )  # fmt: skip
    return made


def open_logged_in(page, base: str, path: str):
    """A page in a context with a non-UTC time zone, logged in, showing ``path``."""
    context = page.context.browser.new_context(
        viewport={"width": 1280, "height": 800}, timezone_id=ZONE
    )
    tab = context.new_page()
    log_in(tab, base, path)
    return tab


def row_ids(tab) -> list[int]:
    rows = tab.get_by_test_id("signal-row")
    return [int(pk) for pk in rows.evaluate_all("rows => rows.map(r => r.dataset.signalId)")]


def wait_rows(tab, expected: list[int]) -> None:
    """Wait until the table shows exactly ``expected`` (htmx swaps it in after the click)."""
    tab.wait_for_function(
        """ids => JSON.stringify([...document.querySelectorAll('[data-testid=signal-row]')]
                   .map(r => Number(r.dataset.signalId))) === JSON.stringify(ids)""",
        arg=expected,
    )
    assert row_ids(tab) == expected


def test_history_local_time_filter_pages_and_export(live_daphne, page, artifacts_dir):
    rule = make_rule("Scalp fast")
    made = make_signals(PAGE_SIZE + 10, rule_id=rule.pk, rule_name=rule.name)
    newest_first = [s.id for s in reversed(made)]
    tab = open_logged_in(page, live_daphne, "/signals/")
    try:
        assert tab.get_by_role("heading", name="Signals").is_visible()
        assert row_ids(tab) == newest_first[:PAGE_SIZE]

        # Times in the browser's zone, UTC on hover.
        cell = tab.get_by_test_id("signal-row").first.locator("time")
        assert cell.inner_text() == "2025-12-16 23:34:55"  # 14:34:55Z + 9 h
        assert cell.get_attribute("title") == "2025-12-16 14:34:55 UTC"
        assert cell.get_attribute("datetime") == "2025-12-16T14:34:55Z"
        assert tab.locator("thead [data-tz-name]").inner_text() == ZONE
        first_row = tab.get_by_test_id("signal-row").first.inner_text()
        assert "Scalp fast" in first_row and f"#{rule.pk}" in first_row
        tab.screenshot(path=artifacts_dir / "signals-history.png", full_page=True)

        # Next page: the remaining 10, no overlap, and back.
        tab.get_by_test_id("older").click()
        wait_rows(tab, newest_first[PAGE_SIZE:])
        assert "/signals/?before=" in tab.url
        assert tab.get_by_test_id("older").count() == 0
        expect(tab.get_by_test_id("signal-row").first.locator("time")).to_have_text(
            "2025-12-16 23:30:45"
        )
        tab.screenshot(path=artifacts_dir / "signals-older-page.png", full_page=True)
        tab.get_by_test_id("newer").click()
        wait_rows(tab, newest_first[:PAGE_SIZE])
        assert "/signals/?after=" in tab.url

        # A filter (typed in lower case), swapped in by htmx, times still local.
        tab.evaluate("window.__sameDocument = true")
        tab.get_by_label("Symbol").fill("msft")
        tab.get_by_role("button", name="Filter").click()
        msft = [s.id for s in reversed(made) if s.symbol == "MSFT"]
        wait_rows(tab, msft)
        tab.wait_for_url("**/signals/?symbol=msft*")
        assert tab.evaluate("window.__sameDocument") is True
        expect(tab.get_by_test_id("signal-row").first.locator("time")).to_have_text(
            "2025-12-16 23:34:50"
        )
        tab.screenshot(path=artifacts_dir / "signals-filtered.png", full_page=True)

        # The export link carries the filter; the CSV streams through Daphne.
        with tab.expect_download() as download:
            tab.get_by_role("link", name="Export CSV").click()
        rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        assert [int(row["id"]) for row in rows] == msft[::-1]
        assert {row["symbol"] for row in rows} == {"MSFT"}
        assert rows[0]["time_utc"].endswith("Z")

        # A bad filter is a sentence next to the field, not an error page.
        tab.locator("#id_date_from").fill("2025-12-17")
        tab.locator("#id_date_to").fill("2025-12-16")
        tab.get_by_role("button", name="Filter").click()
        error = tab.locator("#err-date_to")
        error.wait_for()
        assert "is before the ‘from’ date" in error.inner_text()
        assert tab.get_by_test_id("signal-row").count() == 0
        tab.screenshot(path=artifacts_dir / "signals-bad-filter.png", full_page=True)
    finally:
        tab.context.close()


def test_history_empty_state(live_daphne, page, artifacts_dir):
    tab = open_logged_in(page, live_daphne, "/signals/")
    try:
        empty = tab.get_by_test_id("empty-state")
        assert "No signals yet." in empty.inner_text()
        assert empty.get_by_role("link", name="Dashboard").is_visible()
        tab.screenshot(path=artifacts_dir / "signals-empty.png", full_page=True)
    finally:
        tab.context.close()
