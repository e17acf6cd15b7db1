"""Issue 12, end to end in real Chromium against a real Daphne, the real worker (csv feed) and
two real local HTTP receivers: add a webhook and a Discord destination on the Alerts page,
"Send test" each (the receivers get them, the page says how it went), start the engine in
another tab, and watch the signals' deliveries arrive in the log without a reload; the
receivers got each signal with ``X-Scalp-Delivery`` = its id."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alerts import services, transport
from alerts.models import Delivery, Destination
from engine.services import settings_update
from signals.models import Signal
from tests.alerts.receiver import Receiver
from tests.browser.helpers import log_in
from tests.browser.test_phone import overflow, reachable
from tests.engine.helpers import start_worker, stop_worker, write_bars, zigzag_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = 1_765_894_200  # 2025-12-16 14:10:00 UTC
SECRET = "desk-secret-0123456789-abcdef"
DISCORD_TOKEN = "Zx9" * 13 + "Q"  # 40 characters
HOOK, CHANNEL = "Desk webhook", "Team channel"


def header(received, name: str) -> str | None:
    return {k.lower(): v for k, v in received.headers.items()}.get(name.lower())


def card(page, name: str):
    return page.locator(f"[data-testid=destination][data-name='{name}']")


def add_destination(page, base: str, *, kind: str, name: str, url: str, secret: str = "") -> None:
    form = page.get_by_test_id("destination-form")
    form.get_by_label("Kind").select_option(kind)
    form.get_by_label("Name").fill(name)
    if kind == "webhook":
        form.get_by_label("Webhook URL", exact=True).fill(url)
        form.get_by_label("Secret").fill(secret)
        expect(form.locator("#add-discord_url")).to_be_hidden()
    else:
        # Only the chosen kind's boxes are shown.
        expect(form.get_by_label("Webhook URL", exact=True)).to_be_hidden()
        form.locator("#add-discord_url").fill(url)
    form.get_by_role("button", name="Add destination").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/alerts/#dest-\d+$"))
    expect(card(page, name)).to_be_visible()


def test_alerts_reach_a_webhook_and_discord_live(live_daphne, page, artifacts_dir, tmp_path):
    rows = sorted(
        zigzag_rows("AAPL", 190.0, 400, start=T0) + zigzag_rows("MSFT", 410.0, 400, start=T0),
        key=lambda r: r[0],
    )
    settings_update(feed="csv", csv_path=str(write_bars(tmp_path / "bars.csv", rows)))
    with Receiver() as hook_rx, Receiver() as discord_rx:
        worker = start_worker(
            "--speed", "10", log_path=tmp_path / "worker.log", SCALP_WEB_URL=live_daphne
        )
        try:
            run(live_daphne, page, artifacts_dir, hook_rx, discord_rx)
        finally:
            stop_worker(worker)


def run(base, page, artifacts_dir, hook_rx, discord_rx) -> None:
    log_in(page, base, "/alerts/")
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    expect(page.get_by_test_id("empty-state")).to_be_visible()

    # Add the two destinations through the form.
    discord_url = f"{discord_rx.url}/api/webhooks/123/{DISCORD_TOKEN}"
    add_destination(page, base, kind="webhook", name=HOOK, url=f"{hook_rx.url}/hook", secret=SECRET)
    add_destination(page, base, kind="discord", name=CHANNEL, url=discord_url)
    hook, channel = Destination.objects.get(name=HOOK), Destination.objects.get(name=CHANNEL)
    assert (hook.kind, hook.url, hook.secret) == ("webhook", f"{hook_rx.url}/hook", SECRET)
    assert (channel.kind, channel.url) == ("discord", discord_url)
    expect(card(page, HOOK).get_by_test_id("secret")).to_contain_text("••••")
    expect(card(page, CHANNEL).get_by_test_id("url")).to_have_text(
        f"{discord_rx.url}/api/webhooks/123/••••{DISCORD_TOKEN[-4:]}"
    )
    html = page.content()
    assert SECRET not in html and DISCORD_TOKEN not in html

    # Send test on each: the receivers get it, the card says how it went, the log shows it.
    page.evaluate("window.__notReloaded = true")
    for name, rx, destination in ((HOOK, hook_rx, hook), (CHANNEL, discord_rx, channel)):
        card(page, name).get_by_role("button", name=f"Send test to {name}").click()
        outcome = card(page, name).get_by_test_id("test-outcome")
        expect(outcome).to_have_text(re.compile(r"^Delivered: HTTP 200 in \d+ ms$"))
        (got,) = rx.wait_for(1, timeout=10)
        assert header(got, "X-Scalp-Delivery").startswith("test-")
        row = page.locator(
            f"[data-testid=delivery-row][data-destination-id='{destination.pk}']"
        ).first
        expect(row.get_by_test_id("signal")).to_have_text("test")
        expect(row.get_by_test_id("status")).to_have_text("Delivered")
        expect(row.get_by_test_id("http-status")).to_have_text("200")
    assert header(hook_rx.requests[0], "X-Scalp-Signature") == transport.signature(
        SECRET, hook_rx.requests[0].body
    )
    assert hook_rx.requests[0].path == "/hook"
    assert discord_rx.requests[0].path == f"/api/webhooks/123/{DISCORD_TOKEN}"
    assert "(test)" in discord_rx.requests[0].body.decode()
    expect(page.get_by_test_id("delivery-row")).to_have_count(2)
    page.screenshot(path=artifacts_dir / "alerts-tests-sent.png", full_page=True)

    # Start the engine in another tab (the dashboard); this page stays open.
    dashboard = page.context.new_page()
    dashboard.goto(f"{base}/")
    state = dashboard.get_by_test_id("engine-state")
    state.filter(has_text="Idle").wait_for(timeout=20_000)
    dashboard.get_by_test_id("start").click()
    state.filter(has_text="Running").wait_for(timeout=20_000)

    # The signals' deliveries appear in the log by themselves, delivered.
    for destination in (hook, channel):
        delivered = page.locator(
            f"[data-testid=delivery-row][data-destination-id='{destination.pk}']"
            "[data-status=delivered]:not([data-signal-id=''])"
        )
        delivered.first.wait_for(timeout=60_000)
        expect(delivered.first.get_by_test_id("http-status")).to_have_text("200")
        expect(delivered.first.get_by_test_id("signal")).to_have_text(
            re.compile(r"^#\d+ (AAPL|MSFT)( buy| sell)?$")
        )
    assert page.evaluate("window.__notReloaded") is True, "the page must not reload"
    page.screenshot(path=artifacts_dir / "alerts-live-deliveries.png", full_page=True)

    # What the page showed is what was stored and what the receivers got. Read in this
    # order while the engine runs on: a row is delivered only after its receiver got it.
    shown = page.locator(
        "[data-testid=delivery-row][data-status=delivered]:not([data-signal-id=''])"
    )
    shown_ids = {int(row.get_attribute("data-signal-id")) for row in shown.all()}
    for rx, destination in ((hook_rx, hook), (discord_rx, channel)):
        delivered_ids = set(
            Delivery.objects.filter(
                destination=destination, status="delivered", signal__isnull=False
            ).values_list("signal_id", flat=True)
        )
        keys = [header(r, "X-Scalp-Delivery") for r in list(rx.requests)]
        signal_ids = set(Signal.objects.values_list("id", flat=True))
        signal_keys = [k for k in keys if not k.startswith("test-")]
        assert delivered_ids and {str(i) for i in delivered_ids} <= set(signal_keys)
        assert {int(k) for k in signal_keys} <= signal_ids
        assert shown_ids <= signal_ids
    hook_signals = [
        r for r in list(hook_rx.requests) if not header(r, "X-Scalp-Delivery").startswith("test-")
    ]
    assert hook_signals
    for received in hook_signals:
        assert header(received, "X-Scalp-Signature") == transport.signature(SECRET, received.body)
        assert f'"id":{header(received, "X-Scalp-Delivery")}' in received.body.decode()
    discord_signals = [
        r
        for r in list(discord_rx.requests)
        if not header(r, "X-Scalp-Delivery").startswith("test-")
    ]
    for received in discord_signals:
        assert f"#{header(received, 'X-Scalp-Delivery')}" in received.body.decode()
    dashboard.close()


def test_edit_keeps_the_secret_and_the_dashboard_warns_of_a_failing_destination(
    live_daphne, page, artifacts_dir
):
    with Receiver(default="503") as rx:
        log_in(page, live_daphne, "/alerts/")
        add_destination(
            page, live_daphne, kind="webhook", name=HOOK, url=f"{rx.url}/hook", secret=SECRET
        )
        hook = card(page, HOOK)
        for tries in (1, 2, 3):
            hook.get_by_role("button", name=f"Send test to {HOOK}").click()
            expect(hook.get_by_test_id("test-outcome")).to_have_text(
                "Failed: The receiver answered 503: receiver says no"
            )
            rx.wait_for(tries, timeout=10)
            expect(page.locator("[data-testid=delivery-row][data-status=failed]")).to_have_count(
                tries
            )
        expect(hook.get_by_test_id("failing-badge")).to_have_text("Failing · 3 tries in a row")
        expect(hook.get_by_test_id("last-error")).to_have_text(
            "Last error: The receiver answered 503: receiver says no"
        )

        # The dashboard says so, with the way to the destination.
        page.goto(f"{live_daphne}/")
        warning = page.get_by_test_id("alerts-failing")
        expect(warning).to_have_text(
            f"Alerts to “{HOOK}” keep failing (3 tries): The receiver answered 503: "
            "receiver says no — see Alerts."
        )
        page.screenshot(path=artifacts_dir / "dashboard-alerts-failing.png", full_page=True)
        warning.get_by_role("link", name="Alerts").click()
        page.wait_for_url(re.compile(r"/alerts/#dest-\d+$"))

        # Edit: the secret box is empty (the stored one only masked); left empty it is kept.
        card(page, HOOK).get_by_role("link", name=f"Edit {HOOK}").click()
        secret_box = page.get_by_label("Secret")
        expect(secret_box).to_have_value("")
        expect(secret_box).to_have_attribute("type", "password")
        expect(secret_box).to_have_attribute(
            "placeholder", f"stored ••••{SECRET[-4:]} · leave empty to keep it"
        )
        assert SECRET not in page.content()
        page.get_by_label("Name").fill("Desk webhook v2")
        page.get_by_label("Symbols").fill("aapl, msft")
        page.get_by_label("Side").select_option("sell")
        page.screenshot(path=artifacts_dir / "alerts-edit.png", full_page=True)
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r"/alerts/#dest-\d+$"))
        edited = card(page, "Desk webhook v2")
        expect(edited.get_by_test_id("filters")).to_have_text("Symbols: AAPL, MSFT · Side: sell")
        stored = Destination.objects.get()
        assert (stored.name, stored.secret, stored.symbols, stored.side) == (
            "Desk webhook v2",
            SECRET,
            ["AAPL", "MSFT"],
            "sell",
        )

        # Disabled, it no longer warns.
        edited.get_by_role("button", name="Disable Desk webhook v2").click()
        expect(edited.get_by_test_id("disabled-badge")).to_be_visible()
        page.goto(f"{live_daphne}/")
        expect(page.get_by_test_id("alerts-failing")).to_have_count(0)


def test_the_alerts_page_fits_a_phone(live_daphne, phone, artifacts_dir):
    hook = services.destination_create(
        kind="webhook", name=HOOK, url="https://hooks.example.com/" + "x" * 120, secret=SECRET
    )
    services.destination_create(
        kind="discord", name=CHANNEL, url=f"https://discord.com/api/webhooks/123/{DISCORD_TOKEN}"
    )
    services.delivery_test_record(
        hook,
        services.Outcome(False, False, 400, 8.0, "The receiver answered 400: " + "no " * 40),
    )
    log_in(phone, live_daphne, "/alerts/")
    phone.wait_for_load_state("networkidle")
    phone.screenshot(path=artifacts_dir / "phone-alerts.png", full_page=True)
    problems = overflow(phone)
    assert not problems, problems
    reachable(phone.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts"))
    for name in (HOOK, CHANNEL):
        for action in ("Edit", "Send test to", "Disable", "Remove"):
            reachable(card(phone, name).get_by_label(f"{action} {name}", exact=True))
    reachable(phone.get_by_role("button", name="Add destination"))
