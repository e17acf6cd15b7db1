"""The rule pages in real Chromium: the builder, the text box, clone, delete, the preview."""

import re

import pytest
from playwright.sync_api import expect

from rules.models import Rule
from tests.browser.helpers import log_in
from tests.factories import make_rule, make_running_engine

pytestmark = pytest.mark.browser


def rows(page):
    return page.locator("[data-testid=condition-rows] tbody tr")


def row_error(page, index: int, part: str):
    """The inline error slot of one side of a row (the input's aria-describedby)."""
    field = rows(page).nth(index).locator(f"[name={part}]")
    return page.locator(f"#{field.get_attribute('aria-describedby')}")


def test_build_a_rule_with_the_builder(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/rules/new/")
    expect(page.get_by_role("heading", name="New rule")).to_be_visible()
    expect(rows(page)).to_have_count(2)
    text_form = page.get_by_test_id("rule-text")
    expect(text_form).to_have_text("PRICE > MA5 AND MA5 > MA10")
    page.get_by_label("Name").fill("Dip scalper")

    page.get_by_role("button", name="+ Add condition").click()
    expect(rows(page)).to_have_count(3)
    new_left = rows(page).nth(2).locator("[name=left]")
    expect(new_left).to_be_focused()
    new_left.fill("RSI14")
    rows(page).nth(2).locator("[name=op]").select_option("<")
    rows(page).nth(2).locator("[name=right]").fill("RSI1")
    error = row_error(page, 2, "right")
    expect(error).to_contain_text("RSI1")
    expect(error).to_contain_text("n from 2 to 200")
    expect(error).to_be_visible()
    expect(text_form).to_contain_text("Fix the highlighted fields")
    # The slot sits right under the field at fault, in the same table cell.
    box, field = error.bounding_box(), rows(page).nth(2).locator("[name=right]").bounding_box()
    assert abs(box["x"] - field["x"]) < 2 and 0 <= box["y"] - (field["y"] + field["height"]) < 8
    page.screenshot(path=artifacts_dir / "rules-builder-error.png", full_page=True)

    rows(page).nth(2).locator("[name=right]").fill("30")
    expect(error).to_be_empty()
    expect(error).to_be_hidden()
    expect(text_form).to_have_text("PRICE > MA5 AND MA5 > MA10 AND RSI14 < 30")

    page.get_by_role("button", name="Remove condition 2").click()
    expect(rows(page)).to_have_count(2)
    # The keyboard stays in the rows: on the row that took the removed one's place.
    expect(rows(page).nth(1).locator("[name=left]")).to_be_focused()
    expect(text_form).to_have_text("PRICE > MA5 AND RSI14 < 30")
    page.get_by_label("Cooldown (s)").fill("15")

    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(f"{live_daphne}/rules/")
    expect(page.get_by_role("status")).to_contain_text("Created the rule “Dip scalper”")
    row = page.get_by_test_id("rule-row").filter(has_text="Dip scalper")
    expect(row).to_contain_text("PRICE > MA5 AND RSI14 < 30")
    expect(row).to_contain_text("15 s")
    assert Rule.objects.get(name="Dip scalper").definition["conditions"][1] == {
        "left": "RSI14", "op": "<", "right": 30}  # fmt: skip


def test_text_box_fills_the_rows(live_daphne, page):
    log_in(page, live_daphne, "/rules/new/")
    page.get_by_role("button", name="Remove condition 2").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).nth(0).locator("[name=left]")).to_be_focused()
    box = page.get_by_label("Type the rule and fill the rows from it")
    box.fill("PRICE > MA5 AND MA5 >")
    page.get_by_role("button", name="Fill rows").click()
    expect(page.locator("#err-text")).to_have_text(
        "Expected an operand or a number after '>', found the end of the text."
    )
    expect(rows(page)).to_have_count(1)
    expect(box).to_be_focused()  # back in the box to fix the text

    box.fill("PRICE > MA5 AND MA5 > MA10")
    box.press("Enter")  # Enter in the box fills the rows; it does not save the rule
    expect(rows(page)).to_have_count(2)
    assert [rows(page).nth(i).locator("[name=left]").input_value() for i in range(2)] == [
        "PRICE", "MA5"]  # fmt: skip
    assert rows(page).nth(1).locator("[name=right]").input_value() == "MA10"
    expect(page.locator("#err-text")).to_be_empty()
    expect(page.get_by_test_id("rule-text")).to_have_text("PRICE > MA5 AND MA5 > MA10")
    assert page.url == f"{live_daphne}/rules/new/"
    assert not Rule.objects.filter(type="custom").exists()
    expect(rows(page).nth(0).locator("[name=left]")).to_be_focused()

    box.fill("ma5 crosses_above ma20 or rsi14 < 30")
    page.get_by_role("button", name="Fill rows").click()
    expect(page.get_by_test_id("rule-text")).to_have_text("MA5 crosses_above MA20 OR RSI14 < 30")
    expect(page.get_by_label("any (OR)")).to_be_checked()
    assert rows(page).nth(0).locator("[name=op]").input_value() == "crosses_above"


def test_system_rule_is_cloned_never_deleted(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/rules/")
    system = page.get_by_test_id("rule-row").filter(has_text="System · read-only")
    expect(system).to_have_count(1)
    expect(system.get_by_role("link", name=re.compile("Delete"))).to_have_count(0)
    expect(system.get_by_role("link", name=re.compile("Edit"))).to_have_count(0)
    expect(page.get_by_test_id("rules-empty")).to_contain_text("No rules of your own yet")

    system.get_by_role("button", name="Clone MA Momentum").click()
    page.wait_for_url(re.compile(r"/rules/\d+/edit/$"))
    expect(page.get_by_label("Name")).to_have_value("MA Momentum copy")
    expect(page.get_by_test_id("rule-text")).to_have_text("PRICE > MA5 AND MA5 > MA10")

    page.get_by_role("link", name="← All rules").click()
    copy = page.get_by_test_id("rule-row").filter(has_text="MA Momentum copy")
    expect(copy.get_by_role("link", name="Delete MA Momentum copy")).to_be_visible()
    expect(copy.get_by_role("link", name="Edit MA Momentum copy")).to_be_visible()
    expect(copy.get_by_role("button", name="Clone MA Momentum copy")).to_be_visible()
    expect(page.get_by_test_id("rules-empty")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "rules-list.png", full_page=True)
    copy.get_by_role("link", name="Delete MA Momentum copy").click()
    expect(page.get_by_role("heading", name="Delete the rule “MA Momentum copy”?")).to_be_visible()
    page.get_by_role("button", name="Delete rule").click()
    page.wait_for_url(f"{live_daphne}/rules/")
    expect(page.get_by_test_id("rule-row").filter(has_text="MA Momentum copy")).to_have_count(0)
    expect(page.get_by_test_id("rule-row")).to_have_count(1)


def test_preview_shows_the_signal_count_and_a_chart(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/rules/new/")
    page.get_by_role("button", name="Preview").click()
    summary = page.get_by_test_id("preview-summary")
    expect(summary).to_contain_text(re.compile(r"\d+ signals?\s+over 720 bars"))
    count = int(re.search(r"(\d+) signal", summary.inner_text())[1])
    assert count > 0
    expect(page.locator("[data-preview-chart] canvas").first).to_be_visible()
    expect(page.get_by_test_id("preview-signals").locator("tbody tr")).to_have_count(min(count, 25))
    page.screenshot(path=artifacts_dir / "rules-preview.png", full_page=True)


def test_save_uses_what_the_trader_sees(live_daphne, page):
    """A text typed in the box is saved without Fill rows; edited rows show in the box."""
    log_in(page, live_daphne, "/rules/new/")
    box = page.get_by_label("Type the rule and fill the rows from it")
    expect(box).to_have_value("PRICE > MA5 AND MA5 > MA10")
    # Rows edited: the box follows them.
    rows(page).nth(1).locator("[name=op]").select_option("crosses_above")
    expect(box).to_have_value("PRICE > MA5 AND MA5 crosses_above MA10")
    # Typed with the dropdown's labels, no Fill rows: the text form shows it, Save stores it.
    page.get_by_label("Name").fill("Typed")
    box.fill("MA5 crosses above MA20 AND PRICE ≥ VWAP")
    expect(page.get_by_test_id("rule-text")).to_have_text(
        "MA5 crosses_above MA20 AND PRICE >= VWAP"
    )
    page.get_by_role("button", name="Save rule").click()
    page.wait_for_url(f"{live_daphne}/rules/")
    assert Rule.objects.get(name="Typed").text == "MA5 crosses_above MA20 AND PRICE >= VWAP"


def test_the_running_rule_is_read_only(live_daphne, page):
    running = make_rule(name="Live one")
    make_running_engine(rule=running)
    log_in(page, live_daphne, "/rules/")
    row = page.get_by_test_id("rule-row").filter(has_text="Live one")
    expect(row.get_by_role("button", name="Edit")).to_be_disabled()
    expect(row.get_by_role("button", name="Delete")).to_be_disabled()
    expect(page.get_by_test_id("lock-message")).to_contain_text("stop the engine before editing")
    page.goto(f"{live_daphne}/rules/{running.pk}/edit/")
    expect(page.get_by_label("Name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save changes")).to_be_disabled()
    expect(page.get_by_test_id("lock-message")).to_have_count(1)
