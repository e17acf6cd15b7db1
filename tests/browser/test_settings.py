"""The Settings page in real Chromium: save, test the IB connection (fake TWS and an unused
port), reveal / copy / rotate the consumer token."""

import pytest
from playwright.sync_api import expect

from engine.services import settings_get
from tests.browser.helpers import log_in
from tests.conftest import free_port
from tests.factories import make_running_engine
from watchlists.models import Watchlist

pytestmark = pytest.mark.browser


def test_save_settings(live_daphne, page, artifacts_dir):
    log_in(page, live_daphne, "/settings/")
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    port = page.get_by_label("Port", exact=True)
    port.fill("99999")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#err-ib_port")).to_have_text("A port is between 1 and 65535.")
    expect(page.get_by_label("Port", exact=True)).to_have_attribute("aria-invalid", "true")
    assert settings_get().ib_port == 7497

    page.get_by_label("Port", exact=True).fill("4002")
    page.get_by_label("Client id", exact=True).fill("21")
    page.get_by_label("1 minute").check()
    page.get_by_label("Interactive Brokers (TWS / IB Gateway)").check()
    page.get_by_label("If the client id is taken, use the next free one").check()
    page.get_by_label("Daily restart").fill("24:00")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#err-ib_restart_time")).to_contain_text("“24:00” is not a time of day")
    assert settings_get().ib_port == 7497
    page.get_by_label("Daily restart").fill("5:30")
    page.get_by_label("Time zone").fill("Europe/London")
    page.get_by_role("button", name="Save settings").click()
    expect(
        page.get_by_text("Settings saved: they apply the next time the engine starts.")
    ).to_be_visible()
    expect(page.get_by_label("Daily restart")).to_have_value("05:30")
    expect(page.get_by_label("Port", exact=True)).to_have_value("4002")
    expect(page.get_by_label("1 minute")).to_be_checked()
    s = settings_get()
    assert (s.ib_port, s.ib_client_id, s.bar_seconds, s.feed) == (4002, 21, 60, "ib")
    assert (s.ib_next_client_id, s.ib_restart_time, s.ib_restart_zone) == (
        True, "05:30", "Europe/London"
    )  # fmt: skip
    page.screenshot(path=artifacts_dir / "settings.png", full_page=True)


def test_test_connection_reports_in_words(live_daphne, page, artifacts_dir, fake_tws):
    log_in(page, live_daphne, "/settings/")
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Port", exact=True).fill(str(fake_tws.port))
    page.get_by_label("Client id", exact=True).fill("99")
    page.get_by_role("button", name="Test connection").click()
    result = page.get_by_test_id("ib-test-result").locator("[data-ok]")
    expect(result).to_have_attribute("data-ok", "true", timeout=15_000)
    expect(result).to_contain_text(
        f"Connected to TWS / IB Gateway at 127.0.0.1:{fake_tws.port}: API version"
    )
    expect(result).to_contain_text("account DU1234567 (paper trading)")
    page.screenshot(path=artifacts_dir / "settings-test-ok.png", full_page=True)

    unused = free_port()
    page.get_by_label("Port", exact=True).fill(str(unused))
    page.get_by_role("button", name="Test connection").click()
    expect(result).to_have_attribute("data-ok", "false", timeout=15_000)
    expect(result).to_contain_text(f"Can't reach TWS / IB Gateway at 127.0.0.1:{unused}")
    page.screenshot(path=artifacts_dir / "settings-test-unreachable.png", full_page=True)

    page.get_by_label("Port", exact=True).fill("")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#err-ib_port")).to_have_text(
        "Type the API port, e.g. 7497 for TWS paper trading."
    )
    assert page.evaluate("window.__sameDocument") is True
    assert settings_get().ib_port == 7497  # testing saves nothing


def test_reveal_copy_and_rotate_the_token(live_daphne, page, artifacts_dir):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_daphne)
    log_in(page, live_daphne, "/settings/")
    old = settings_get().feed_token
    box = page.get_by_test_id("feed-token")
    command = page.get_by_test_id("consumer-command")
    expect(box).to_have_attribute("type", "password")
    # Inner text is what is rendered (the hidden token span is in the DOM, not on screen).
    expect(command).not_to_contain_text(old, use_inner_text=True)
    expect(command).to_contain_text("--token ••••", use_inner_text=True)

    page.get_by_role("button", name="Show").click()
    expect(box).to_have_attribute("type", "text")
    expect(box).to_have_value(old)
    host = live_daphne.removeprefix("http://")
    expect(command).to_have_text(
        f"python examples/signal_consumer.py --url ws://{host}/ws/signals/ --token {old}",
        use_inner_text=True,
    )
    page.get_by_role("button", name="Copy the example client command").click()
    expect(page.get_by_role("button", name="Copy the example client command")).to_have_text(
        "Copied"
    )
    assert page.evaluate("navigator.clipboard.readText()") == (
        f"python examples/signal_consumer.py --url ws://{host}/ws/signals/ --token {old}"
    )
    page.get_by_role("button", name="Copy the token").click()
    expect(page.get_by_role("button", name="Copy the token")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == old
    page.screenshot(path=artifacts_dir / "settings-token-shown.png", full_page=True)

    # Rotation asks first; dismissing keeps the token.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Rotate token…").click()
    page.wait_for_timeout(300)
    assert settings_get().feed_token == old
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate token…").click()
    expect(page.get_by_test_id("token-notice")).to_contain_text("New token issued.")
    new = settings_get().feed_token
    assert new != old
    expect(box).to_have_value(new)
    expect(box).to_have_attribute("type", "password")  # a fresh box starts masked
    page.get_by_role("button", name="Show").click()
    expect(command).to_contain_text(f"--token {new}", use_inner_text=True)
    page.screenshot(path=artifacts_dir / "settings-token-rotated.png", full_page=True)


def test_settings_are_locked_while_the_engine_runs(live_daphne, page, artifacts_dir):
    make_running_engine(watchlist=Watchlist.objects.get(is_active=True))
    log_in(page, live_daphne, "/settings/")
    expect(page.get_by_test_id("lock-message")).to_have_text(
        "The engine is running: stop it before changing the connection, feed or bar size."
    )
    expect(page.get_by_role("button", name="Save settings")).to_be_disabled()
    expect(page.get_by_label("Port", exact=True)).to_be_disabled()
    expect(page.get_by_label("1 minute")).to_be_disabled()
    # The token is not engine configuration: it stays usable.
    expect(page.get_by_role("button", name="Rotate token…")).to_be_enabled()
    page.screenshot(path=artifacts_dir / "settings-locked.png", full_page=True)
