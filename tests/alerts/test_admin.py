"""The destinations admin validates through ``alerts.services`` (the sentences land on the
right fields), saves through it, and never puts a secret back in the HTML; the delivery
log is read only."""

from __future__ import annotations

import pytest

from alerts import services
from alerts.models import Delivery, Destination
from rules.models import Rule
from tests.alerts.receiver import Receiver

pytestmark = pytest.mark.django_db

ADD = "/admin/alerts/destination/add/"
SECRET = "hmac-secret-do-not-show-0123456789"
TOKEN = "123456789:AAE" + "x" * 30 + "tokenEND"
DISCORD = "https://discord.com/api/webhooks/1234/" + "d" * 40 + "TOKENTAIL"


def form(**fields: str | bool) -> dict[str, str]:
    data: dict[str, str | bool] = {
        "name": "", "kind": "webhook", "url": "", "secret": "", "chat_id": "", "template": "",
        "rule_ids": "", "symbols": "", "side": "", "enabled": "on",
    }  # fmt: skip
    data.update(fields)
    return {key: value for key, value in data.items() if value is not False}  # type: ignore[misc]


def change_url(destination: Destination) -> str:
    return f"/admin/alerts/destination/{destination.pk}/change/"


def errors(resp) -> dict[str, list[str]]:
    assert resp.status_code == 200, resp.status_code
    return {field: list(msgs) for field, msgs in resp.context["adminform"].form.errors.items()}


def test_add_a_webhook_through_the_service(admin_client):
    rule = Rule.objects.get(is_system=True)
    page = admin_client.get(ADD).content.decode()
    assert 'type="password" name="secret"' in page
    resp = admin_client.post(
        ADD,
        form(url="http://127.0.0.1:9000/hook", secret=SECRET, rule_ids=f"{rule.pk}",
             symbols="aapl, brk.b", side="buy"),
    )  # fmt: skip
    assert resp.status_code == 302, errors(resp)
    d = Destination.objects.get()
    assert (d.name, d.kind, d.url, d.secret) == (
        "Webhook 127.0.0.1", "webhook", "http://127.0.0.1:9000/hook", SECRET,
    )  # fmt: skip
    assert (d.rule_ids, d.symbols, d.side, d.enabled) == ([rule.pk], ["AAPL", "BRK B"], "buy", True)


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"url": "file:///etc/passwd"}, "url", "Only http:// and https:// URLs"),
        ({"url": "ftp://example.com/x"}, "url", "not “ftp”"),
        ({"url": "http://example.com/\x00"}, "url", "NUL"),
        ({"url": "http://e.com/" + "a" * 5000}, "url", "too long (5013 characters"),
        ({"url": "http://e.com/", "template": '{"a": {{nope}}}'}, "template", "{{nope}}"),
        ({"url": "http://e.com/", "template": '{"a": 1,\n "b": }'}, "template", "line 2, column"),
        ({"url": "http://e.com/", "rule_ids": "999999"}, "rule_ids", "Rule 999999 doesn't"),
        ({"url": "http://e.com/", "rule_ids": "²"}, "rule_ids", "is not a rule id"),
        ({"url": "http://e.com/", "side": "long"}, "side", "is not a side"),
        ({"url": "http://e.com/", "symbols": "AAPL, $$"}, "symbols", "“$$” is not a valid symbol"),
        ({"kind": "telegram", "secret": "nope", "chat_id": "1"}, "secret", "bot token"),
        ({"kind": "telegram", "secret": TOKEN, "chat_id": "x y"}, "chat_id", "chat id"),
    ],
)
def test_add_refuses_bad_input_on_its_field_and_stores_nothing(admin_client, fields, field,
                                                               fragment):  # fmt: skip
    found = errors(admin_client.post(ADD, form(**fields)))
    assert list(found) == [field]
    assert fragment in " ".join(found[field])
    assert not Destination.objects.exists()


def test_change_never_shows_the_secret_and_an_empty_box_keeps_it(admin_client):
    d = services.destination_create(kind="webhook", url="http://127.0.0.1:9/a", secret=SECRET)
    page = admin_client.get(change_url(d)).content.decode()
    assert SECRET not in page
    assert "••••" + SECRET[-4:] in page  # the stored one, masked
    assert 'type="password"' in page
    resp = admin_client.post(change_url(d), form(name="Renamed", url="http://127.0.0.1:9/b"))
    assert resp.status_code == 302, errors(resp)
    d.refresh_from_db()
    assert (d.name, d.url, d.secret) == ("Renamed", "http://127.0.0.1:9/b", SECRET)
    resp = admin_client.post(change_url(d), form(name="Renamed", url="http://127.0.0.1:9/b",
                                                 secret="new-secret"))  # fmt: skip
    assert resp.status_code == 302, errors(resp)
    d.refresh_from_db()
    assert d.secret == "new-secret"
    # A refused change leaves the row as it was, and its page still hides the secret.
    resp = admin_client.post(change_url(d), form(url="gopher://x", secret="typed-again"))
    assert list(errors(resp)) == ["url"]
    assert "typed-again" not in resp.content.decode()
    d.refresh_from_db()
    assert (d.url, d.secret) == ("http://127.0.0.1:9/b", "new-secret")


def test_telegram_token_and_discord_url_are_never_in_the_html(admin_client):
    tg = services.destination_create(kind="telegram", secret=TOKEN, chat_id="-1001")
    dc = services.destination_create(kind="discord", url=DISCORD, name="Chat")
    pages = [admin_client.get(url).content.decode()
             for url in (change_url(tg), change_url(dc), "/admin/alerts/destination/")]  # fmt: skip
    for page in pages:
        assert TOKEN not in page and "tokenEND" not in page
        assert DISCORD not in page and "TOKENTAIL" not in page
    assert "https://discord.com/api/webhooks/1234/••••TAIL" in pages[1]
    # Empty boxes keep the token and the Discord URL.
    resp = admin_client.post(change_url(tg), form(kind="telegram", chat_id="@mychannel"))
    assert resp.status_code == 302, errors(resp)
    resp = admin_client.post(change_url(dc), form(kind="discord", name="Chat 2"))
    assert resp.status_code == 302, errors(resp)
    tg.refresh_from_db()
    dc.refresh_from_db()
    assert (tg.secret, tg.chat_id, tg.url) == (TOKEN, "@mychannel", "https://api.telegram.org")
    assert (dc.url, dc.name) == (DISCORD, "Chat 2")
    # Changing the kind needs the new kind's secret: nothing is carried over.
    resp = admin_client.post(change_url(dc), form(kind="telegram", chat_id="1"))
    assert list(errors(resp)) == ["secret"]


def test_list_shows_masked_url_filters_and_health(admin_client):
    d = services.destination_create(kind="webhook", url="http://127.0.0.1:9/a", secret=SECRET,
                                    symbols="AAPL", side="sell")  # fmt: skip
    d.failures_in_row, d.last_error = 3, "The receiver answered 500: boom"
    d.save()
    page = admin_client.get("/admin/alerts/destination/").content.decode()
    assert SECRET not in page
    assert "http://127.0.0.1:9/a" in page
    assert "Symbols: AAPL · Side: sell" in page
    assert "failing (3 in a row): The receiver answered 500: boom" in page


def test_send_test_action_and_the_read_only_log(admin_client):
    with Receiver() as rx:
        d = services.destination_create(kind="webhook", url=rx.url + "/hook", secret=SECRET)
        resp = admin_client.post(
            "/admin/alerts/destination/",
            {"action": "send_test", "_selected_action": [d.pk]},
            follow=True,
        )
        (request,) = rx.requests
    assert "delivered (HTTP 200" in resp.content.decode()
    assert request.headers["X-Scalp-Delivery"].startswith("test-")
    delivery = Delivery.objects.get()
    assert (delivery.signal_id, delivery.status) == (None, "delivered")
    log = admin_client.get("/admin/alerts/delivery/")
    assert log.status_code == 200 and "delivered" in log.content.decode()
    assert admin_client.get("/admin/alerts/delivery/add/").status_code == 403
    view = admin_client.get(f"/admin/alerts/delivery/{delivery.pk}/change/").content.decode()
    assert 'name="_save"' not in view
    assert admin_client.post(f"/admin/alerts/delivery/{delivery.pk}/change/",
                             {"status": "failed"}).status_code == 403  # fmt: skip
    assert admin_client.post(f"/admin/alerts/delivery/{delivery.pk}/delete/",
                             {"post": "yes"}).status_code == 403  # fmt: skip
    assert Delivery.objects.get().status == "delivered"


def test_actions_enable_disable_and_remove_go_through_the_service(admin_client):
    d = services.destination_create(kind="discord", url=DISCORD)
    d.failures_in_row = 5
    d.save()
    admin_client.post("/admin/alerts/destination/",
                      {"action": "disable", "_selected_action": [d.pk]})  # fmt: skip
    d.refresh_from_db()
    assert not d.enabled
    admin_client.post("/admin/alerts/destination/",
                      {"action": "enable", "_selected_action": [d.pk]})  # fmt: skip
    d.refresh_from_db()
    assert d.enabled and d.failures_in_row == 0
    admin_client.post("/admin/alerts/destination/",
                      {"action": "remove", "_selected_action": [d.pk]})  # fmt: skip
    assert not Destination.objects.exists()
