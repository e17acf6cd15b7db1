"""Issue 11, end to end in real Chromium against a real Daphne and the real worker on the demo
feed: build a buy rule (with a 1-minute timeframe filter, through the picker) and a sell rule
(through the text box) in the builder, make both the active rules with the toggles, Start on
the dashboard, and see both kinds of signal arrive live with their side."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from rules.models import Rule
from signals.models import Signal
from tests.browser.helpers import log_in
from tests.engine.helpers import start_worker, stop_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BUY, SELL = "Buy over the 1m average", "Sell under the average"


def rows(page):
    return page.locator("[data-testid=condition-rows] tbody tr")


def build_buy_rule(page) -> None:
    """PRICE > MA5 on 1-minute bars, side buy: the timeframe comes from the picker."""
    page.get_by_label("Name").fill(BUY)
    page.get_by_label("Side").select_option("buy")
    page.get_by_label("Cooldown (s)").fill("20")
    page.get_by_role("button", name="Remove condition 2").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).nth(0).locator("[name=right]")).to_have_value("MA5")
    rows(page).nth(0).locator("[name=right_tf]").select_option("1m")
    expect(page.get_by_test_id("rule-text")).to_have_text("PRICE > MA5@1m")
    expect(page.get_by_label("Type the rule and fill the rows from it")).to_have_value(
        "PRICE > MA5@1m"
    )
    page.get_by_role("button", name="Save rule").click()


def build_sell_rule(page) -> None:
    """PRICE < MA5 on the run's bars, side sell: typed in the text box."""
    page.get_by_label("Name").fill(SELL)
    page.get_by_label("Side").select_option("sell")
    page.get_by_label("Cooldown (s)").fill("20")
    box = page.get_by_label("Type the rule and fill the rows from it")
    box.fill("PRICE < MA5")
    box.press("Enter")  # fills the rows
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_test_id("rule-text")).to_have_text("PRICE < MA5")
    page.get_by_role("button", name="Save rule").click()


def row_of(page, name: str):
    return page.get_by_test_id("rule-row").filter(has_text=name)


def test_a_buy_rule_and_a_sell_rule_fire_live_with_their_side(
    live_daphne, page, artifacts_dir, tmp_path
):
    worker = start_worker(
        "--feed", "demo", "--speed", "10", log_path=tmp_path / "worker.log",
        SCALP_WEB_URL=live_daphne,
    )  # fmt: skip
    try:
        log_in(page, live_daphne, "/rules/new/")
        build_buy_rule(page)
        page.wait_for_url(f"{live_daphne}/rules/")
        page.goto(f"{live_daphne}/rules/new/")
        build_sell_rule(page)
        page.wait_for_url(f"{live_daphne}/rules/")

        # The list: each rule's side, and the toggles (the system rule was the one active).
        expect(row_of(page, BUY).get_by_test_id("side")).to_have_text("BUY ▲")
        expect(row_of(page, SELL).get_by_test_id("side")).to_have_text("SELL ▼")
        count = page.get_by_test_id("active-count")
        expect(count).to_have_text("1 of 10 active")
        page.get_by_role("switch", name="Active: MA Momentum").click()
        expect(count).to_have_text("0 of 10 active")
        page.get_by_role("switch", name=f"Active: {BUY}").click()
        expect(count).to_have_text("1 of 10 active")
        page.get_by_role("switch", name=f"Active: {SELL}").click()
        expect(count).to_have_text("2 of 10 active")
        expect(page.get_by_role("switch", name=f"Active: {BUY}")).to_have_attribute(
            "aria-checked", "true"
        )
        expect(page.get_by_role("switch", name=f"Active: {SELL}")).to_have_attribute(
            "aria-checked", "true"
        )
        expect(page.get_by_role("switch", name="Active: MA Momentum")).to_have_attribute(
            "aria-checked", "false"
        )
        buy, sell = Rule.objects.get(name=BUY), Rule.objects.get(name=SELL)
        assert buy.definition["side"] == "buy" and buy.text == "PRICE > MA5@1m"
        assert sell.definition["side"] == "sell" and sell.text == "PRICE < MA5"
        assert set(Rule.objects.filter(is_active=True)) == {buy, sell}
        page.screenshot(path=artifacts_dir / "rules-two-active.png", full_page=True)

        # The dashboard: both active rules, then Start on the demo feed.
        page.goto(f"{live_daphne}/")
        active = page.get_by_test_id("active-rule")
        expect(active).to_have_count(2)
        expect(active.filter(has_text=BUY).get_by_test_id("side")).to_have_text("BUY ▲")
        expect(active.filter(has_text=SELL).get_by_test_id("side")).to_have_text("SELL ▼")
        page.get_by_test_id("live-indicator").filter(has_text="live").wait_for(timeout=20_000)
        page.evaluate("window.__notReloaded = true")
        page.get_by_test_id("engine-state").filter(has_text="Idle").wait_for(timeout=30_000)
        page.get_by_test_id("start").click()
        page.get_by_test_id("engine-state").filter(has_text="Running").wait_for(timeout=30_000)

        # Both kinds of signal arrive live, each with its side, colour and arrow.
        live = page.locator("#live-signals .signal-row")
        bought = live.and_(page.locator(f'[data-side="buy"][data-rule-id="{buy.pk}"]')).first
        sold = live.and_(page.locator(f'[data-side="sell"][data-rule-id="{sell.pk}"]')).first
        bought.wait_for(timeout=60_000)
        sold.wait_for(timeout=60_000)
        assert page.evaluate("window.__notReloaded") is True, "the page must not reload"
        expect(bought.get_by_test_id("side")).to_have_text("BUY ▲")
        expect(sold.get_by_test_id("side")).to_have_text("SELL ▼")
        assert "text-emerald-300" in bought.get_by_test_id("side").get_attribute("class")
        assert "text-rose-300" in sold.get_by_test_id("side").get_attribute("class")
        expect(bought).to_contain_text(BUY)
        expect(sold).to_contain_text(SELL)

        # What the page shows is what was stored, side included.
        for row, rule, side in ((bought, buy, "buy"), (sold, sell, "sell")):
            stored = Signal.objects.get(pk=int(row.get_attribute("data-signal-id")))
            assert (stored.rule_id, stored.side) == (rule.pk, side)
        assert not Signal.objects.exclude(rule_id__in=(buy.pk, sell.pk)).exists()

        # Each tile has each active rule's state (from the bars' rules list) and last signal.
        symbol = sold.get_attribute("data-symbol")
        slug = symbol.lower()
        state = page.locator(f"#tile-{slug}-rule-{sell.pk}-state")
        expect(state).to_have_attribute("data-state", re.compile(r"^(WAIT|COOLDOWN)$"))
        expect(page.locator(f"#tile-{slug}-rule-{buy.pk}-state")).to_have_attribute(
            "data-state", re.compile(r"^(WAIT|COOLDOWN)$")
        )
        expect(page.locator(f"#tile-{slug}-rule-{sell.pk}-last")).to_contain_text("last")
        page.screenshot(path=artifacts_dir / "dashboard-buy-and-sell.png", full_page=True)

        # While running, the toggles are locked and say why.
        page.goto(f"{live_daphne}/rules/")
        toggle = page.get_by_role("switch", name=f"Active: {BUY}")
        expect(toggle).to_be_disabled()
        expect(toggle).to_have_attribute(
            "title", "The engine is running: stop it before changing the active rules."
        )
    finally:
        stop_worker(worker)
