"""The Alerts page through Django's test client on real SQLite: login and CSRF, adding each
kind, every bad input refused beside its box (never a 500, nothing stored), secrets never
shown back, edit/enable/disable/remove, "Send test" against a real local receiver, the
delivery log, and the dashboard's warning while a destination keeps failing."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from alerts import services, transport
from alerts.models import TELEGRAM_API, Delivery, Destination
from tests.alerts.receiver import Receiver
from tests.factories import logged_in_client, make_rule
from tests.signals.helpers import make_signal

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}

SECRET = "whsec-Zq81-never-shown-back-7731"
BOT_TOKEN = "123456789:AAEhBP0av28nPkWp3sQzX-never-shown"
DISCORD_TOKEN = "Xk3" * 13 + "a"  # 40 characters
DISCORD_URL = f"https://discord.com/api/webhooks/123/{DISCORD_TOKEN}"


@pytest.fixture
def client(db) -> Client:
    """A logged-in trader (pytest-django's ``client`` is anonymous)."""
    return logged_in_client()


def webhook(**overrides) -> dict:
    data = {
        "kind": "webhook",
        "name": "Desk webhook",
        "url": "https://example.com/hook",
        "secret": "",
        "template": "",
        "symbols": "",
        "side": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def telegram(**overrides) -> dict:
    data = {
        "kind": "telegram",
        "name": "Phone",
        "bot_token": BOT_TOKEN,
        "chat_id": "-1001234567890",
        "api_url": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def discord(**overrides) -> dict:
    data = {"kind": "discord", "name": "Team channel", "discord_url": DISCORD_URL, "enabled": "on"}
    data.update(overrides)
    return data


def error_of(html: str, prefix: str, field: str) -> str:
    """The sentence shown beside a box (its ``err-<field>`` paragraph)."""
    match = re.search(rf'<p id="{prefix}-err-{field}"[^>]*>(.*?)</p>', html, re.S)
    assert match, f"no error slot for {field}"
    return html_lib.unescape(match.group(1).strip())


# --- login and CSRF ------------------------------------------------------------------------


def test_every_alerts_url_needs_a_login(db):
    destination = services.destination_create(**webhook())
    anonymous = Client()
    for method, url in [
        ("get", "/alerts/"),
        ("get", "/alerts/log/"),
        ("get", "/alerts/failing/"),
        ("get", f"/alerts/{destination.pk}/edit/"),
        ("get", f"/alerts/{destination.pk}/remove/"),
        ("post", "/alerts/new/"),
        ("post", f"/alerts/{destination.pk}/test/"),
        ("post", f"/alerts/{destination.pk}/enabled/"),
        ("post", f"/alerts/{destination.pk}/remove/"),
    ]:
        response = getattr(anonymous, method)(url, webhook(name="Sneaky"))
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    assert list(Destination.objects.values_list("name", "enabled")) == [("Desk webhook", True)]


def test_posts_need_the_csrf_token(db):
    user = get_user_model().objects.create_user("trader", "", "s3cret-pass-123")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    destination = services.destination_create(**webhook())
    assert strict.post("/alerts/new/", webhook(name="Forged")).status_code == 403
    assert strict.post(f"/alerts/{destination.pk}/enabled/", {"enabled": "0"}).status_code == 403
    assert strict.post(f"/alerts/{destination.pk}/remove/").status_code == 403
    assert strict.post(f"/alerts/{destination.pk}/test/").status_code == 403
    assert list(Destination.objects.values_list("name", "enabled")) == [("Desk webhook", True)]
    assert not Delivery.objects.exists()
    # With the token from the page it goes through.
    page = strict.get("/alerts/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = strict.post("/alerts/new/", webhook(name="Real", csrfmiddlewaretoken=token))
    assert response.status_code == 302
    assert Destination.objects.filter(name="Real").exists()


def test_the_nav_links_to_alerts(client):
    assert 'href="/alerts/"' in client.get("/").content.decode()


# --- add each kind -------------------------------------------------------------------------


def test_add_a_webhook_with_secret_template_and_filters(client):
    rule = make_rule("Breakout")
    template = '{"text": "{{side}} {{symbol}} at {{price}}", "id": {{id}}}'
    response = client.post(
        "/alerts/new/",
        webhook(
            secret=SECRET,
            template=template,
            rule_ids=[str(rule.pk)],
            symbols="aapl, msft",
            side="buy",
        ),
    )
    destination = Destination.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/alerts/#dest-{destination.pk}"
    assert (destination.kind, destination.url, destination.secret) == (
        "webhook",
        "https://example.com/hook",
        SECRET,
    )
    assert destination.template == template
    assert (destination.rule_ids, destination.symbols, destination.side) == (
        [rule.pk],
        ["AAPL", "MSFT"],
        "buy",
    )
    assert destination.enabled is True
    page = client.get("/alerts/").content.decode()
    assert "Added the destination “Desk webhook”." in page
    assert f"Rules: {rule.pk} Breakout · Symbols: AAPL, MSFT · Side: buy" in page
    assert services.secret_masked(SECRET) in page  # ••••7731
    assert SECRET not in page


def test_add_a_telegram_chat_with_the_default_api(client):
    response = client.post("/alerts/new/", telegram())
    assert response.status_code == 302
    destination = Destination.objects.get()
    assert destination.kind == "telegram"
    assert destination.url == TELEGRAM_API
    assert (destination.secret, destination.chat_id) == (BOT_TOKEN, "-1001234567890")
    page = client.get("/alerts/").content.decode()
    assert TELEGRAM_API in page
    assert BOT_TOKEN not in page and BOT_TOKEN.split(":")[1] not in page


def test_add_a_discord_channel_its_token_masked(client):
    response = client.post("/alerts/new/", discord(enabled=""))
    assert response.status_code == 302
    destination = Destination.objects.get()
    assert (destination.kind, destination.url, destination.enabled) == (
        "discord",
        DISCORD_URL,
        False,
    )
    page = client.get("/alerts/").content.decode()
    assert "https://discord.com/api/webhooks/123/••••" in page
    assert DISCORD_TOKEN not in page
    assert 'data-testid="disabled-badge"' in page


def test_the_form_shows_the_placeholders_and_the_default_api(client):
    page = client.get("/alerts/").content.decode()
    for name in services.PLACEHOLDERS:
        assert "{{" + name + "}}" in page
    assert f"default {TELEGRAM_API}" in page
    assert 'data-testid="empty-state"' in page


# --- bad input: a sentence beside the box, status 200, nothing stored -----------------------

BAD = [
    (webhook(url="file:///etc/passwd"), "url", "Only http:// and https:// URLs"),
    (webhook(url="javascript:alert(1)"), "url", "Only http:// and https:// URLs"),
    (webhook(url=""), "url", "Give the URL to send to"),
    (webhook(url="https://exa mple.com/"), "url", "can't contain spaces"),
    (
        webhook(url="https://" + "a" * 5000 + ".com/"),
        "url",
        "too long (5013 characters, at most 2000)",
    ),
    (webhook(name="Desk\x00hook"), "name", "can't contain a NUL character"),
    (webhook(name="N" * 5000), "name", "too long (5000 characters, at most 80)"),
    (webhook(secret="abc\x00def"), "secret", "can't contain a NUL character"),
    (webhook(secret="s" * 5000), "secret", "too long (5000 characters, at most 200)"),
    (webhook(template='{"a": 1,\n "b": }'), "template", "not valid JSON once filled in"),
    (webhook(template='{"a": "{{colour}}"}'), "template", "Unknown placeholder “{{colour}}”"),
    (webhook(template="x" * 10_001), "template", "too long (10001 characters"),
    (webhook(template='{"t": "\x00"}'), "template", "can't contain a NUL character"),
    (webhook(rule_ids=["999"]), "rule_ids", "Rule 999 doesn't exist."),
    (webhook(rule_ids=["²"]), "rule_ids", "“²” is not a rule id (a number)."),
    (webhook(rule_ids=["1e3"]), "rule_ids", "is not a rule id"),
    (webhook(symbols="AAPL, THIS-IS-NOT-A-TICKER"), "symbols", "THIS-IS-NOT-A-TICKER"),
    (webhook(symbols="A" * 5000), "symbols", "too long"),
    (webhook(side="up"), "side", "“up” is not a side"),
    (webhook(kind="smtp"), "kind", "“smtp” is not a destination kind"),
    (webhook(kind="web\x00hook"), "kind", "is not a destination kind"),
    (telegram(bot_token="not-a-token"), "bot_token", "A Telegram bot token looks like"),
    (telegram(bot_token=""), "bot_token", "A Telegram bot token looks like"),
    (telegram(chat_id="my chat"), "chat_id", "A Telegram chat id is a number"),
    (telegram(api_url="file:///tmp/x"), "api_url", "Only http:// and https:// URLs"),
    (discord(discord_url="javascript:alert(1)"), "discord_url", "Only http:// and https://"),
    (discord(discord_url=""), "discord_url", "Give the URL to send to"),
]


@pytest.mark.parametrize(("data", "field", "sentence"), BAD)
def test_bad_input_is_refused_beside_its_box(client, data, field, sentence):
    response = client.post("/alerts/new/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert sentence in error_of(html, "add", field)
    assert 'aria-invalid="true"' in html
    assert not Destination.objects.exists()


def test_a_template_error_names_the_position(client):
    response = client.post("/alerts/new/", webhook(template='{"a": 1,\n "b": }'))
    assert "at line 2, column 7" in error_of(response.content.decode(), "add", "template")
    response = client.post("/alerts/new/", webhook(template='{\n  "a": "{{ nope }}"\n}'))
    assert "at line 2, column 9" in error_of(response.content.decode(), "add", "template")


def test_a_refused_form_keeps_what_was_typed_but_never_a_secret(client):
    response = client.post(
        "/alerts/new/", webhook(name="Kept name", url="ftp://x", secret=SECRET, symbols="AAPL")
    )
    html = response.content.decode()
    assert 'value="Kept name"' in html and 'value="ftp://x"' in html and 'value="AAPL"' in html
    assert SECRET not in html
    response = client.post("/alerts/new/", discord(name="", discord_url="ftp://" + DISCORD_TOKEN))
    assert DISCORD_TOKEN not in response.content.decode().replace("••••", "")
    response = client.post("/alerts/new/", telegram(chat_id="nope"))
    assert BOT_TOKEN not in response.content.decode()


def test_a_get_of_the_add_url_is_refused_and_a_missing_destination_is_404(client):
    assert client.get("/alerts/new/").status_code == 405
    for url in ("/alerts/999/edit/", "/alerts/999/remove/"):
        assert client.get(url).status_code == 404
    for url in ("/alerts/999/test/", "/alerts/999/enabled/", "/alerts/999/remove/"):
        assert client.post(url).status_code == 404


def test_log_filters_that_make_no_sense_show_everything(client):
    destination = services.destination_create(**webhook())
    services.delivery_test_record(destination, services.Outcome(True, False, 200, 3.0))
    for query in ("?destination=abc&status=nope", "?destination=%00", "?destination=²"):
        response = client.get("/alerts/log/" + query)
        assert response.status_code == 200
        assert response.content.decode().count('data-testid="delivery-row"') == 1


# --- edit, enable/disable, remove ----------------------------------------------------------


def test_edit_keeps_the_secret_when_its_box_is_left_empty(client):
    destination = services.destination_create(**webhook(secret=SECRET))
    page = client.get(f"/alerts/{destination.pk}/edit/").content.decode()
    assert 'value="https://example.com/hook"' in page
    assert "stored ••••7731 · leave empty to keep it" in page
    assert SECRET not in page

    response = client.post(
        f"/alerts/{destination.pk}/edit/",
        webhook(name="Desk hook 2", url="https://example.com/v2", secret=""),
    )
    assert response.status_code == 302
    destination.refresh_from_db()
    assert (destination.name, destination.url, destination.secret) == (
        "Desk hook 2",
        "https://example.com/v2",
        SECRET,
    )

    client.post(f"/alerts/{destination.pk}/edit/", webhook(secret="a-new-secret-2222"))
    destination.refresh_from_db()
    assert destination.secret == "a-new-secret-2222"

    page = client.get(f"/alerts/{destination.pk}/edit/").content.decode()
    assert 'name="clear_secret"' in page
    client.post(f"/alerts/{destination.pk}/edit/", webhook(secret="", clear_secret="1"))
    destination.refresh_from_db()
    assert destination.secret == ""
    page = client.get(f"/alerts/{destination.pk}/edit/").content.decode()
    assert 'name="clear_secret"' not in page


def test_edit_keeps_the_bot_token_and_the_discord_url(client):
    chat = services.destination_create(**{**telegram(), "secret": BOT_TOKEN})
    response = client.post(
        f"/alerts/{chat.pk}/edit/", telegram(bot_token="", chat_id="@desk_alerts")
    )
    assert response.status_code == 302
    chat.refresh_from_db()
    assert (chat.secret, chat.chat_id) == (BOT_TOKEN, "@desk_alerts")

    channel = services.destination_create(kind="discord", name="Team", url=DISCORD_URL)
    page = client.get(f"/alerts/{channel.pk}/edit/").content.decode()
    assert DISCORD_TOKEN not in page
    response = client.post(f"/alerts/{channel.pk}/edit/", discord(name="Team 2", discord_url=""))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.url) == ("Team 2", DISCORD_URL)


def test_edit_refusals_show_beside_the_box_and_change_nothing(client):
    destination = services.destination_create(**webhook(secret=SECRET))
    response = client.post(
        f"/alerts/{destination.pk}/edit/", webhook(name="Changed", template="{nope")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "not valid JSON" in error_of(html, "edit", "template")
    assert SECRET not in html
    destination.refresh_from_db()
    assert (destination.name, destination.template) == ("Desk webhook", "")
    # A new kind needs its own boxes: the webhook URL and secret are not carried over.
    response = client.post(f"/alerts/{destination.pk}/edit/", discord(discord_url=""))
    assert "Give the URL to send to" in error_of(response.content.decode(), "edit", "discord_url")
    response = client.post(f"/alerts/{destination.pk}/edit/", telegram(bot_token=""))
    assert "bot token looks like" in error_of(response.content.decode(), "edit", "bot_token")
    destination.refresh_from_db()
    assert (destination.kind, destination.secret) == ("webhook", SECRET)


def test_disable_and_enable(client):
    destination = services.destination_create(**webhook())
    destination.failures_in_row = 4
    destination.save()
    response = client.post(f"/alerts/{destination.pk}/enabled/", {"enabled": "0"}, headers=HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<article id="dest-{destination.pk}"')
    assert 'data-enabled="0"' in html and ">Enable</button>" in html
    destination.refresh_from_db()
    assert destination.enabled is False

    response = client.post(f"/alerts/{destination.pk}/enabled/", {"enabled": "1"})
    assert response.status_code == 302
    destination.refresh_from_db()
    assert (destination.enabled, destination.failures_in_row) == (True, 0)
    page = client.get("/alerts/").content.decode()
    assert "Desk webhook is enabled: new signals are sent to it." in page


def test_remove_asks_first_then_removes_with_the_log(client):
    destination = services.destination_create(kind="discord", name="Team channel", url=DISCORD_URL)
    services.delivery_test_record(destination, services.Outcome(True, False, 204, 5.0))
    page = client.get(f"/alerts/{destination.pk}/remove/").content.decode()
    assert "Remove the destination “Team channel”?" in page
    assert DISCORD_TOKEN not in page
    assert Destination.objects.exists()  # a GET only asks

    response = client.post(f"/alerts/{destination.pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/alerts/"
    assert not Destination.objects.exists() and not Delivery.objects.exists()
    assert "Removed the destination “Team channel”." in client.get("/alerts/").content.decode()


# --- Send test against a real receiver -----------------------------------------------------


def header(request, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


def test_send_test_reaches_the_receiver_signed_and_logs_it(client):
    with Receiver() as rx:
        destination = services.destination_create(
            **webhook(url=f"{rx.url}/hook", secret=SECRET, side="sell")
        )
        response = client.post(f"/alerts/{destination.pk}/test/", headers=HTMX)
        assert response.status_code == 200
        (got,) = rx.wait_for(1, timeout=10)
    assert got.path == "/hook"
    key = header(got, "X-Scalp-Delivery")
    assert key is not None and key.startswith("test-")
    assert header(got, "X-Scalp-Signature") == transport.signature(SECRET, got.body)
    body = json.loads(got.body)
    assert (body["symbol"], body["side"], body["test"]) == ("TEST", "sell", True)

    html = response.content.decode()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.http_status, delivery.signal_id) == ("delivered", 200, None)
    outcome = re.search(r'data-testid="test-outcome"[^>]*>(.*?)</p>', html).group(1)
    assert outcome == f"Delivered: HTTP 200 in {delivery.latency_ms:.0f} ms"
    assert 'id="delivery-log" hx-swap-oob="true"' in html  # the log comes along
    row = re.search(r'<tr data-testid="delivery-row".*?</tr>', html, re.S).group(0)
    assert f'data-delivery-id="{delivery.pk}"' in row and 'data-status="delivered"' in row
    assert ">test</td>" in row and ">200</td>" in row
    assert SECRET not in html


def test_send_test_to_a_failing_receiver_says_why(client):
    with Receiver(default="503") as rx:
        destination = services.destination_create(**webhook(url=rx.url))
        response = client.post(f"/alerts/{destination.pk}/test/", headers=HTMX)
        rx.wait_for(1, timeout=10)
    html = response.content.decode()
    sentence = "Failed: The receiver answered 503: receiver says no"
    assert re.search(r'data-testid="test-outcome" data-ok="0">(.*?)</p>', html).group(1) == sentence
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.http_status, delivery.tries) == ("failed", 503, 1)
    assert "The receiver answered 503: receiver says no" in html  # the log row's error
    assert "Last error: The receiver answered 503: receiver says no" in html  # the health


def test_send_test_without_htmx_comes_back_to_the_page_with_the_outcome(client):
    with Receiver() as rx:
        destination = services.destination_create(
            kind="discord", name="Team channel", url=f"{rx.url}/api/webhooks/123/{DISCORD_TOKEN}"
        )
        response = client.post(f"/alerts/{destination.pk}/test/")
        (got,) = rx.wait_for(1, timeout=10)
    assert response.status_code == 302
    assert got.path == f"/api/webhooks/123/{DISCORD_TOKEN}"
    assert "(test)" in json.loads(got.body)["content"]
    page = client.get("/alerts/").content.decode()
    assert "“Team channel”: Delivered: HTTP 200 in" in page
    assert DISCORD_TOKEN not in page


def test_send_test_to_a_closed_port_fails_with_a_sentence(client):
    with Receiver() as rx:
        url = rx.url  # closed once the block ends
    destination = services.destination_create(**webhook(url=url))
    response = client.post(f"/alerts/{destination.pk}/test/", headers=HTMX)
    assert response.status_code == 200
    assert "Failed: Could not connect" in response.content.decode()


# --- the delivery log ----------------------------------------------------------------------


def test_the_log_lists_signals_newest_first_and_filters(client):
    hook = services.destination_create(**webhook())
    chat = services.destination_create(**{**telegram(), "secret": BOT_TOKEN})
    first, second = make_signal(1, symbol="AAPL"), make_signal(2, symbol="MSFT")
    services.outbox_add(first)
    services.outbox_add(second)
    ok = services.Outcome(True, False, 200, 12.4)
    bad = services.Outcome(False, False, 400, 7.0, "The receiver answered 400: bad chat")
    for delivery in Delivery.objects.filter(destination=hook):
        services.delivery_settle(delivery.pk, ok)
    services.delivery_settle(Delivery.objects.get(destination=chat, signal=first).pk, bad)

    html = client.get("/alerts/log/").content.decode()
    ids = re.findall(r'data-delivery-id="(\d+)"', html)
    assert [int(i) for i in ids] == sorted(Delivery.objects.values_list("pk", flat=True))[::-1]
    assert f"#{first.pk} AAPL" in html and f"#{second.pk} MSFT" in html
    assert "The receiver answered 400: bad chat" in html
    assert 'hx-trigger="every 3s"' in html

    html = client.get(f"/alerts/log/?destination={chat.pk}").content.decode()
    assert html.count('data-testid="delivery-row"') == 2
    assert f'hx-get="/alerts/log/?destination={chat.pk}"' in html  # polling keeps the filter
    html = client.get("/alerts/log/?status=failed").content.decode()
    assert html.count('data-testid="delivery-row"') == 1 and 'data-status="failed"' in html
    html = client.get("/alerts/log/?status=pending").content.decode()
    assert html.count('data-testid="delivery-row"') == 1 and f"#{second.pk} MSFT" in html
    # The page itself takes the same filters (without JavaScript).
    page = client.get(f"/alerts/?destination={hook.pk}&status=delivered").content.decode()
    assert page.count('data-testid="delivery-row"') == 2
    assert BOT_TOKEN not in page


# --- the dashboard's warning ---------------------------------------------------------------


def test_the_dashboard_warns_while_a_destination_keeps_failing(client):
    with Receiver(default="503") as rx:
        destination = services.destination_create(**webhook(name="Desk webhook", url=rx.url))
        for tries in (1, 2):
            client.post(f"/alerts/{destination.pk}/test/")
            assert "keep failing" not in client.get("/").content.decode(), tries
        client.post(f"/alerts/{destination.pk}/test/")
        rx.wait_for(3, timeout=10)
    html = client.get("/").content.decode()
    assert (
        "Alerts to “Desk webhook” keep failing (3 tries): The receiver answered 503: "
        "receiver says no — see"
    ) in html
    assert f'href="/alerts/#dest-{destination.pk}"' in html
    assert "keep failing" in client.get("/alerts/failing/").content.decode()
    assert 'data-testid="failing-badge"' in client.get("/alerts/").content.decode()

    # Disabled: no warning; a delivery that goes through clears it.
    services.destination_set_enabled(destination, False)
    destination.failures_in_row = 5
    destination.save()
    assert "keep failing" not in client.get("/").content.decode()
    services.destination_set_enabled(destination, True)
    destination.failures_in_row = 3
    destination.save()
    assert "keep failing" in client.get("/").content.decode()
    services.delivery_test_record(destination, services.Outcome(True, False, 200, 3.0))
    assert "keep failing" not in client.get("/").content.decode()
    assert "keep failing" not in client.get("/alerts/failing/").content.decode()


def test_secrets_never_appear_in_any_page(client):
    hook = services.destination_create(**webhook(secret=SECRET))
    chat = services.destination_create(**{**telegram(), "secret": BOT_TOKEN})
    channel = services.destination_create(kind="discord", name="Team", url=DISCORD_URL)
    for destination in (hook, chat, channel):
        services.delivery_test_record(
            destination, services.Outcome(False, False, 401, 3.0, "The receiver answered 401.")
        )
    urls = ["/", "/alerts/", "/alerts/log/", "/alerts/failing/"]
    for destination in (hook, chat, channel):
        urls += [f"/alerts/{destination.pk}/edit/", f"/alerts/{destination.pk}/remove/"]
    for url in urls:
        html = client.get(url).content.decode()
        for secret in (SECRET, BOT_TOKEN, BOT_TOKEN.split(":")[1], DISCORD_TOKEN):
            assert secret not in html, (url, secret)
    for destination in (hook, chat, channel):
        html = client.post(
            f"/alerts/{destination.pk}/enabled/", {"enabled": "0"}, headers=HTMX
        ).content.decode()
        for secret in (SECRET, BOT_TOKEN, DISCORD_TOKEN):
            assert secret not in html
