"""Every page at a phone's width (390 px) in real Chromium: nothing wider than the screen,
the navigation and the key controls within reach, the live signals near the top."""

import pytest
from playwright.sync_api import expect

from engine.services import engine_state_get
from rules.models import Rule
from rules.services import rule_activate
from tests.browser.helpers import log_in
from tests.factories import make_rule, make_running_engine
from tests.signals.helpers import make_signal
from watchlists.services import watchlist_get_active

pytestmark = pytest.mark.browser

WIDTH = 390
NAV = ("Dashboard", "Rules", "Watchlists", "Signals", "Settings", "Admin")


def overflow(page) -> list[str]:
    """The page's width beyond the screen, and what sticks out (empty when it fits)."""
    return page.evaluate(
        """(width) => {
          const doc = document.documentElement;
          if (doc.scrollWidth <= width) return [];
          const out = [`page is ${doc.scrollWidth}px wide`];
          for (const el of document.body.querySelectorAll("*")) {
            const box = el.getBoundingClientRect();
            if (box.width && box.right > width + 0.5 && el.checkVisibility()) {
              let inScroller = false;
              for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                const style = getComputedStyle(p);
                if (/(auto|scroll|hidden)/.test(style.overflowX)) { inScroller = true; break; }
              }
              if (!inScroller) out.push(`${el.tagName}#${el.id} right=${box.right}`);
            }
          }
          return out.slice(0, 8);
        }""",
        WIDTH,
    )


def reachable(locator) -> None:
    """Visible, and within the screen's width once scrolled to (no sideways page scroll)."""
    expect(locator).to_be_visible()
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 0.5, box


def check_page(page, artifacts_dir, name: str) -> None:
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts_dir / f"phone-{name}.png", full_page=True)
    problems = overflow(page)
    assert not problems, f"{name}: {problems}"
    for label in NAV:
        reachable(page.get_by_role("navigation", name="Main").get_by_role("link", name=label))
    reachable(page.get_by_role("button", name="Log out"))


def test_every_page_fits_a_phone(live_daphne, phone, artifacts_dir):
    page = phone
    page.goto(f"{live_daphne}/accounts/login/")
    page.screenshot(path=artifacts_dir / "phone-login.png", full_page=True)
    problems = overflow(page)
    assert not problems, f"login: {problems}"
    reachable(page.get_by_role("button", name="Log in"))

    # A running engine with a long message, a locked rule, stored signals.
    running = make_rule(name="Opening range breakout, long name for the picker")
    rule_activate(rule=running)
    for n in range(12):
        make_signal(n, symbol=("AAPL", "MSFT", "BRK B")[n % 3])
    make_running_engine(rule=running, watchlist=watchlist_get_active())
    state = engine_state_get()
    state.message = (
        "Scanning AAPL, MSFT, NVDA, TSLA and AMZN on 5-second bars from TWS paper "
        "(127.0.0.1:7497, client 17); the exchange closes at 16:00 New York time."
    )
    state.save()
    log_in(page, live_daphne, "/")
    check_page(page, artifacts_dir, "dashboard")
    # The live signals come before the tiles on a phone, and start within the first screen.
    live = page.get_by_role("heading", name="Live signals")
    reachable(live)
    assert (
        live.bounding_box()["y"] < page.get_by_role("heading", name="Symbols").bounding_box()["y"]
    )
    page.evaluate("window.scrollTo(0, 0)")
    assert live.bounding_box()["y"] < 844
    reachable(page.get_by_test_id("engine-message"))
    # The seed's rule picker became the list of active rules and a link to change them.
    reachable(page.get_by_test_id("active-rule").filter(has_text=running.name))
    reachable(page.get_by_test_id("change-rules"))
    reachable(page.get_by_test_id("pick-watchlist"))

    page.goto(f"{live_daphne}/rules/")
    check_page(page, artifacts_dir, "rules")
    for rule in Rule.objects.all():
        row = page.get_by_test_id("rule-row").filter(has_text=rule.name)
        reachable(row.get_by_role("button", name=f"Clone {rule.name}"))
        reachable(row.get_by_role("switch", name=f"Active: {rule.name}"))
    reachable(page.get_by_test_id("lock-message"))
    reachable(page.get_by_test_id("active-count"))

    page.goto(f"{live_daphne}/rules/new/")
    check_page(page, artifacts_dir, "builder")
    for locator in (
        page.get_by_label("Name"),
        page.get_by_label("Type the rule and fill the rows from it"),
        page.get_by_label("Condition 2: right operand or number"),
        page.get_by_label("Condition 2: right operand's timeframe"),
        page.get_by_label("Side"),
        page.get_by_role("button", name="Remove condition 2"),
        page.get_by_role("button", name="Save rule"),
        page.get_by_role("button", name="Preview"),
    ):
        reachable(locator)

    page.goto(f"{live_daphne}/watchlists/")
    check_page(page, artifacts_dir, "watchlists")
    reachable(page.get_by_role("button", name="Create watchlist"))
    reachable(page.get_by_role("button", name="Add").first)

    page.goto(f"{live_daphne}/signals/")
    check_page(page, artifacts_dir, "signals")
    # The table scrolls sideways inside its own box; time, side, symbol and price show at once.
    reachable(page.get_by_test_id("signals-scroller"))
    first = page.get_by_test_id("signal-row").first
    for column in range(4):
        reachable(first.locator("td").nth(column))

    page.goto(f"{live_daphne}/settings/")
    check_page(page, artifacts_dir, "settings")
