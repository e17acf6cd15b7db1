"""The watchlist page in real Chromium: a 6th symbol is refused inline, add/remove without a
reload, create, activate, and the locks while the engine runs."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import log_in
from tests.factories import make_running_engine, make_watchlist
from watchlists.models import Watchlist

pytestmark = pytest.mark.browser

FULL = "A watchlist holds at most 5 symbols; remove one first."


def card(page, name: str):
    return page.locator(f"[data-testid=watchlist][data-name='{name}']")


def chips(page, name: str):
    return card(page, name).locator("[data-symbol]")


def symbols_of(name: str) -> list[str]:
    return Watchlist.objects.get(name=name).symbols


def test_sixth_symbol_refused_inline_then_remove_and_add(live_daphne, page, artifacts_dir):
    make_watchlist(name="Five", symbols=["AAPL", "MSFT", "NVDA", "AMD", "TSLA"])
    log_in(page, live_daphne, "/watchlists/")
    expect(page.get_by_role("heading", name="Watchlists", exact=True)).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    five = card(page, "Five")
    box = five.get_by_label("Add a symbol to Five")
    box.fill("intc")
    box.press("Enter")
    error = five.get_by_test_id("symbol-error")
    expect(error).to_have_text(FULL)
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_be_focused()
    expect(chips(page, "Five")).to_have_count(5)
    page.screenshot(path=artifacts_dir / "watchlists-sixth-refused.png", full_page=True)
    assert symbols_of("Five") == ["AAPL", "MSFT", "NVDA", "AMD", "TSLA"]

    five.get_by_role("button", name="Remove AMD from Five").click()
    expect(chips(page, "Five")).to_have_count(4)
    expect(error).to_be_empty()
    expect(five.get_by_test_id("symbol-count")).to_have_text("4 of 5 symbols")
    assert symbols_of("Five") == ["AAPL", "MSFT", "NVDA", "TSLA"]

    box = five.get_by_label("Add a symbol to Five")
    expect(box).to_be_focused()  # ready for the next ticker
    box.fill("intc")
    box.press("Enter")
    expect(chips(page, "Five")).to_have_count(5)
    expect(chips(page, "Five").last).to_have_attribute("data-symbol", "INTC")
    assert symbols_of("Five") == ["AAPL", "MSFT", "NVDA", "TSLA", "INTC"]

    # A duplicate and a bad ticker are refused in the same place.
    box = five.get_by_label("Add a symbol to Five")
    box.fill("CSCO")  # the 6th again, through the Add button this time
    five.get_by_role("button", name="Add", exact=True).click()
    expect(error).to_have_text(FULL)
    five.get_by_role("button", name="Remove INTC from Five").click()
    expect(chips(page, "Five")).to_have_count(4)
    box = five.get_by_label("Add a symbol to Five")
    box.fill("msft")
    box.press("Enter")
    expect(error).to_have_text("MSFT is already in the watchlist.")
    box = five.get_by_label("Add a symbol to Five")
    box.fill("AAPL$")
    box.press("Enter")
    expect(error).to_have_text(
        "“AAPL$” is not a valid symbol: use letters, digits, '.' or a space."
    )
    assert page.evaluate("window.__sameDocument") is True


def test_create_and_activate_a_watchlist(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/watchlists/")
    expect(card(page, "Default").get_by_test_id("active-badge")).to_be_visible()
    new = page.locator("form", has=page.get_by_role("heading", name="New watchlist"))
    new.get_by_label("Name", exact=True).fill("Semis")
    new.get_by_label("Symbols").fill("nvda, amd, avgo")
    page.get_by_role("button", name="Create watchlist").click()
    expect(page.get_by_role("status").first).to_contain_text("Created the watchlist “Semis”.")
    expect(chips(page, "Semis")).to_have_count(3)
    expect(card(page, "Semis").get_by_test_id("active-badge")).to_have_count(0)

    card(page, "Semis").get_by_role("button", name="Make Semis the active watchlist").click()
    expect(page.get_by_text("“Semis” is now the active watchlist")).to_be_visible()
    expect(card(page, "Semis").get_by_test_id("active-badge")).to_be_visible()
    expect(card(page, "Default").get_by_test_id("active-badge")).to_have_count(0)
    assert Watchlist.objects.get(is_active=True).name == "Semis"

    # Rename through the small popover.
    card(page, "Default").get_by_label("Rename Default").click()
    rename = page.locator("[data-testid=watchlist][data-name=Default] input[name=name]")
    rename.fill("Semis")
    rename.press("Enter")
    expect(card(page, "Default").get_by_role("alert").first).to_have_text(
        "A watchlist named “Semis” already exists; choose another name."
    )
    page.screenshot(path=artifacts_dir / "watchlists.png", full_page=True)
    rename = page.locator("[data-testid=watchlist][data-name=Default] input[name=name]")
    rename.fill("Megacaps")
    rename.press("Enter")
    expect(card(page, "Megacaps")).to_be_visible()
    assert Watchlist.objects.filter(name="Megacaps").exists()


def test_locked_while_the_engine_runs(live_daphne, page, artifacts_dir):
    running = Watchlist.objects.get(is_active=True)
    make_watchlist(name="Spare", symbols=["IBM"])
    make_running_engine(watchlist=running)
    log_in(page, live_daphne, "/watchlists/")
    locked = card(page, running.name)
    lock = f"The engine is running with the watchlist “{running.name}”: stop the engine before"
    expect(locked.get_by_test_id("lock-message")).to_have_text(f"{lock} changing it.")
    expect(locked.get_by_label(f"Add a symbol to {running.name}")).to_be_disabled()
    expect(locked.get_by_role("button", name="Add", exact=True)).to_be_disabled()
    expect(locked.get_by_role("button", name="Rename")).to_be_disabled()
    expect(locked.get_by_role("button", name="Delete")).to_be_disabled()
    expect(locked.get_by_role("button", name="Remove AAPL from Default")).to_be_disabled()
    spare_activate = card(page, "Spare").get_by_role("button", name="Make Spare the active")
    expect(spare_activate).to_be_disabled()
    expect(spare_activate).to_have_attribute(
        "title", "The engine is running: stop it before switching the active watchlist."
    )
    # The list the run doesn't hold stays editable.
    box = card(page, "Spare").get_by_label("Add a symbol to Spare")
    box.fill("ORCL")
    box.press("Enter")
    expect(chips(page, "Spare")).to_have_count(2)
    page.screenshot(path=artifacts_dir / "watchlists-locked.png", full_page=True)


def test_the_symbols_box_says_how_it_reads_before_create(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/watchlists/")
    page.get_by_label("Name", exact=True).fill("Mixed")
    box = page.locator("#id_symbols")
    box.fill("aapl msft, brk.b")
    reading = page.get_by_test_id("symbols-understood")
    expect(reading).to_contain_text("Reads as 3 symbols: AAPL, MSFT, BRK B.")
    box.fill("AAPL IBM")
    expect(reading).to_contain_text("“AAPL IBM” is read as one symbol")
    page.screenshot(path=artifacts_dir / "watchlists-reading.png", full_page=True)
    # The reading was shown as typed: Create saves it at once.
    page.get_by_role("button", name="Create watchlist").click()
    expect(card(page, "Mixed")).to_be_visible()
    assert symbols_of("Mixed") == ["AAPL IBM"]


def test_a_list_of_every_instrument_type(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/watchlists/")
    expect(page.get_by_test_id("items-help")).to_contain_text("SAP:STK:IBIS:EUR")
    page.get_by_label("Name", exact=True).fill("Instruments")
    box = page.locator("#id_symbols")
    box.fill("es:fut:cme, eur.usd:cash spx:ind:cboe; sap:stk:ibis:eur")
    reading = page.get_by_test_id("symbols-understood")
    expect(reading).to_contain_text(
        "Reads as 4 symbols: ES:FUT:CME (future on CME, front month), EURUSD:CASH (FX pair "
        "EUR/USD on IDEALPRO, no volume), SPX:IND:CBOE (index on CBOE, no volume), "
        "SAP:STK:IBIS:EUR (stock on IBIS in EUR)."
    )
    page.get_by_role("button", name="Create watchlist").click()
    expect(chips(page, "Instruments")).to_have_count(4)
    assert symbols_of("Instruments") == ["ES:FUT:CME", "EURUSD:CASH", "SPX:IND:CBOE",
                                         "SAP:STK:IBIS:EUR"]  # fmt: skip

    instruments = card(page, "Instruments")
    add = instruments.get_by_label("Add a symbol to Instruments")
    add.fill("ES:FUT")
    add.press("Enter")
    expect(instruments.get_by_test_id("symbol-error")).to_have_text(
        "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME."
    )
    add = instruments.get_by_label("Add a symbol to Instruments")
    add.fill("aapl")
    add.press("Enter")
    expect(chips(page, "Instruments")).to_have_count(5)
    expect(chips(page, "Instruments").last).to_have_attribute("data-symbol", "AAPL")
    page.screenshot(path=artifacts_dir / "watchlists-instruments.png", full_page=True)
    add = instruments.get_by_label("Add a symbol to Instruments")
    add.fill("BTC:CRYPTO")
    add.press("Enter")
    expect(instruments.get_by_test_id("symbol-error")).to_have_text(FULL)
