"""Issue 13's "Done when": on the demo feed, past 5 market minutes, the live panel's rows
fill in their 1m and 5m outcomes without a reload, and the rules page shows a hit rate.
Real Daphne, the real worker (demo feed at 30× so 5 minutes pass in 10 s), real Chromium."""

import re

import pytest
from playwright.sync_api import expect

from engine.services import settings_update
from rules.services import rule_create, rule_set_active
from signals.models import Outcome
from tests.browser.helpers import log_in
from tests.engine.helpers import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FILLED = '[data-horizon="{}"][data-final="1"]'


def row_snapshot(page, selector):
    """The first row matching ``selector``: its signal id and each outcome cell, read in one
    step in the page."""
    return page.evaluate(
        """(selector) => {
            const row = document.querySelector(selector);
            const cells = {};
            for (const cell of row.querySelectorAll('[data-horizon]')) {
                cells[cell.dataset.horizon] = {
                    final: cell.dataset.final, text: cell.innerText,
                    class: cell.getAttribute('class'), title: cell.getAttribute('title'),
                };
            }
            return {id: Number(row.dataset.signalId), cells};
        }""",
        selector,
    )


def test_outcomes_fill_in_live_and_the_rules_page_shows_a_hit_rate(
    live_daphne, page, artifacts_dir, tmp_path
):
    settings_update(feed="demo", bar_seconds=5, outcome_horizons="1m,5m")
    rule = rule_create(
        name="Often",
        definition={"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}],
                    "cooldown_sec": 30, "trigger": "edge"},
    )  # fmt: skip
    rule_set_active(rule=rule, active=True)
    worker = start_worker(
        "--feed", "demo", "--speed", "30", log_path=tmp_path / "worker.log",
        SCALP_WEB_URL=live_daphne,
    )  # fmt: skip
    try:
        log_in(page, live_daphne)
        page.get_by_test_id("live-indicator").filter(has_text="live").wait_for(timeout=20_000)
        page.get_by_test_id("engine-state").filter(has_text="Idle").wait_for(timeout=30_000)
        page.evaluate("window.__notReloaded = true")
        page.get_by_test_id("start").click()
        page.get_by_test_id("engine-state").filter(has_text="Running").wait_for(timeout=30_000)

        # A live row shows "…" for each horizon until final, then its return, live.
        rows = page.locator("#live-signals .signal-row")
        rows.first.wait_for(timeout=60_000)
        first = rows.last  # the oldest shown: the first to reach its 5m horizon
        assert first.get_by_test_id("outcome").count() == 2
        filled = page.locator(f"#live-signals .signal-row:has({FILLED.format('5m')})")
        filled.first.wait_for(timeout=90_000)
        # One snapshot of that row, read at once: the live panel keeps changing (a newer row
        # may fill its 5m while this one is read, and ``filled.first`` would then be another).
        snap = row_snapshot(page, f"#live-signals .signal-row:has({FILLED.format('5m')})")
        signal_id = snap["id"]
        for label in ("1m", "5m"):
            cell = snap["cells"][label]
            assert cell["final"] == "1", cell
            stored = Outcome.objects.get(signal_id=signal_id, horizon=60 if label == "1m" else 300)
            text = cell["text"]
            if stored.return_pct is None:
                assert text.endswith("—")
            else:
                shown = float(re.search(r"([+−]?)(\d+\.\d\d)%", text)[2])
                assert shown == pytest.approx(abs(stored.return_pct), abs=0.006), text
                colour = "text-emerald-300" if stored.return_pct > 0 else "text-rose-300"
                if round(stored.return_pct, 2) != 0:
                    assert colour in cell["class"]
                assert "MFE" in cell["title"]
        assert page.evaluate("window.__notReloaded") is True, "outcomes must arrive live"
        page.screenshot(path=artifacts_dir / "outcomes-live.png", full_page=True)

        # The rules page: the rule's hit rate at its first horizon, with its count.
        page.goto(f"{live_daphne}/rules/")
        cell = page.get_by_test_id("rule-row").filter(has_text="Often")
        cell = cell.get_by_test_id("rule-hit-rate")
        expect(cell).to_contain_text(re.compile(r"\d+% of \d+ · 1m"))
        page.screenshot(path=artifacts_dir / "outcomes-rules.png", full_page=True)
    finally:
        stop_worker(worker)
