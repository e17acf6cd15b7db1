"""Destinations validated in one place, templates, the outbox written with the signal, and
how one try settles a delivery (retries, 24 h, health)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from alerts import services
from alerts.models import Delivery, Destination
from alerts.services import Outcome
from engine.core.machine import Signal as Fired
from engine.worker.config import RunRule
from engine.worker.engine import record_signal
from rules.models import Rule
from signals.models import Signal
from signals.services import signal_record

pytestmark = pytest.mark.django_db

TOKEN = "123456789:AAEabcdefghijklmnopqrstuvwxyz012345"
T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


def errors(data: dict) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        services.destination_clean(data)
    return caught.value.message_dict


def store(symbol: str = "AAPL", *, second: int = 0, rule_id: int = 1, side: str | None = None):
    return signal_record(
        time=T0 + timedelta(seconds=second),
        symbol=symbol,
        price=189.25,
        rule_id=rule_id,
        rule_name="Default",
        bar_seconds=5,
        values={"MA5": 189.0},
        side=side,
    )


# --- validation ---------------------------------------------------------------------------


def test_a_webhook_is_cleaned_and_named_after_its_host():
    data = services.destination_clean(
        {"kind": "webhook", "url": " https://desk.example/hook ", "symbols": "aapl, brk.b",
         "rule_ids": "1", "side": "BUY"}
    )  # fmt: skip
    assert data["url"] == "https://desk.example/hook"
    assert data["name"] == "Webhook desk.example"
    assert data["symbols"] == ["AAPL", "BRK B"]
    assert data["rule_ids"] == [1]
    assert data["side"] == "buy"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("ftp://example.com/x", "Only http:// and https://"),
        ("gopher://example.com", "Only http:// and https://"),
        ("http:/no-host", "Only http:// and https://"),
        ("https://", "names no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://exa mple.com/", "spaces or control"),
        ("http://example.com/\x00", "NUL"),
        ("", "Give the URL"),
        ("https://example.com/" + "a" * 5000, "too long"),
    ],
)
def test_bad_urls_get_a_sentence(url, says):
    assert says in errors({"kind": "webhook", "url": url})["url"][0]


def test_local_receivers_are_allowed():
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/x", "http://[::1]:80/"):
        assert services.destination_clean({"kind": "webhook", "url": url})["url"] == url


def test_unknown_kind_and_side_and_rules():
    assert "not a destination kind" in errors({"kind": "email", "url": "http://a"})["kind"][0]
    assert "not a side" in errors({"kind": "webhook", "url": "http://a", "side": "long"})["side"][0]
    said = errors({"kind": "webhook", "url": "http://a", "rule_ids": "²"})["rule_ids"][0]
    assert "is not a rule id" in said
    said = errors({"kind": "webhook", "url": "http://a", "rule_ids": "١"})["rule_ids"][0]
    assert "is not a rule id" in said
    assert (
        "Rule 999 doesn't exist"
        in errors({"kind": "webhook", "url": "http://a", "rule_ids": "1, 999"})["rule_ids"][0]
    )
    assert (
        "rule id"
        in errors({"kind": "webhook", "url": "http://a", "rule_ids": "9" * 5000})["rule_ids"][0]
    )
    assert errors({"kind": "webhook", "url": "http://a", "symbols": "AAPL, $$$"})["symbols"]


def test_telegram_needs_a_bot_token_and_a_chat():
    data = services.destination_clean({"kind": "telegram", "secret": TOKEN, "chat_id": "-1001"})
    assert data["url"] == "https://api.telegram.org"
    assert data["name"] == "Telegram api.telegram.org"
    assert (
        "bot token" in errors({"kind": "telegram", "secret": "nope", "chat_id": "1"})["secret"][0]
    )
    assert (
        "chat id" in errors({"kind": "telegram", "secret": TOKEN, "chat_id": "x y"})["chat_id"][0]
    )


def test_discord_keeps_no_secret():
    data = services.destination_clean(
        {"kind": "discord", "url": "https://discord.com/api/webhooks/1/abc", "secret": "x"}
    )
    assert data["secret"] == ""


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ('{"s": "{{ticker}}"}', "Unknown placeholder “{{ticker}}” at line 1, column 8"),
        ('{\n  "s": "{{symbol}"\n}', "not closed"),
        ('{"s": {{symbol}}}', "not valid JSON once filled in"),
        ('{"side": {{side}}}', "not valid JSON once filled in"),
        ('{"a": 1,}', "line 1, column 9"),
        ("[" * 3000 + "]" * 3000, "nested too deeply"),
    ],
)
def test_bad_templates_are_refused_with_the_position(template, says):
    said = errors({"kind": "webhook", "url": "http://a", "template": template})["template"][0]
    assert says in said


def test_a_template_renders_json_escaped_values():
    template = '{"text": "{{side}} {{symbol}} @ {{price}} by {{rule_name}}", "id": {{id}}}'
    services.template_check(template)
    event = {"symbol": "AAPL", "price": 189.25, "side": None, "rule_name": 'He said "go"\n',
             "id": 7, "timestamp": "2026-12-01T14:30:00Z"}  # fmt: skip
    body = json.loads(services.render_template(template, event))
    assert body == {"text": ' AAPL @ 189.25 by He said "go"\n', "id": 7}


def test_update_keeps_the_secret_when_left_empty_and_masks_it():
    destination = services.destination_create(
        kind="webhook", url="http://a/h", secret="a-long-shared-secret-1234"
    )
    services.destination_update(destination, name="Desk", secret="")
    destination.refresh_from_db()
    assert (destination.name, destination.secret) == ("Desk", "a-long-shared-secret-1234")
    assert services.secret_masked(destination.secret) == "••••1234"
    assert services.secret_masked("short") == "••••"
    discord = services.destination_create(
        kind="discord", url="https://discord.com/api/webhooks/42/" + "T" * 60
    )
    assert services.url_masked(discord) == "https://discord.com/api/webhooks/42/••••TTTT"


def test_remove_names_a_missing_destination():
    with pytest.raises(ValidationError, match="no destination 77"):
        services.destination_remove(77)


# --- the outbox -----------------------------------------------------------------------------


def test_the_outbox_takes_matching_enabled_destinations_only():
    everything = services.destination_create(kind="webhook", url="http://a/1")
    msft = services.destination_create(kind="webhook", url="http://a/2", symbols="MSFT")
    sells = services.destination_create(kind="webhook", url="http://a/3", side="sell")
    rule_2 = Rule.objects.exclude(id=1).first() or Rule.objects.create(
        name="Other", definition=Rule.objects.get(id=1).definition
    )
    other_rule = services.destination_create(kind="webhook", url="http://a/4", rule_ids=[rule_2.id])
    off = services.destination_create(kind="webhook", url="http://a/5")
    services.destination_set_enabled(off, False)

    assert services.outbox_add(store("AAPL", side="buy")) == 1
    assert services.outbox_add(store("MSFT", second=5, side="sell")) == 3
    got = {
        (d.signal.symbol, d.destination_id) for d in Delivery.objects.select_related("signal").all()
    }
    assert got == {("AAPL", everything.id), ("MSFT", everything.id), ("MSFT", msft.id),
                   ("MSFT", sells.id)}  # fmt: skip
    assert other_rule.deliveries.count() == 0


def test_the_worker_writes_the_signal_and_its_outbox_in_one_transaction(monkeypatch):
    services.destination_create(kind="webhook", url="http://a/1")
    fired = Fired(symbol="AAPL", close_time=int(T0.timestamp()), price=189.25, values={},
                  rule_id=1, side=None)  # fmt: skip
    run_rule = RunRule(id=1, name="Default", rule=None)  # type: ignore[arg-type]

    def broken(signal):
        raise RuntimeError("disk full")

    monkeypatch.setattr("engine.worker.engine.outbox_add", broken)
    with pytest.raises(RuntimeError):
        record_signal(fired, run_rule, 5)
    assert not Signal.objects.exists()  # the signal went with its outbox rows

    monkeypatch.undo()
    row = record_signal(fired, run_rule, 5)
    assert row is not None and Delivery.objects.get().signal_id == row.id
    assert record_signal(fired, run_rule, 5) is None  # the same bar again: no second row
    assert Delivery.objects.count() == 1


# --- settling a try -------------------------------------------------------------------------


def pending(destination: Destination) -> Delivery:
    services.outbox_add(store(second=Delivery.objects.count() * 5))
    return destination.deliveries.order_by("-id").first()


def test_a_retryable_failure_backs_off_then_gives_up_after_a_day():
    destination = services.destination_create(kind="webhook", url="http://a/1")
    delivery = pending(destination)
    start = delivery.created_at
    waits = []
    for tries in range(1, 12):
        now = start + timedelta(minutes=tries)
        settled = services.delivery_settle(
            delivery.id, Outcome(False, True, 503, 3.0, "The receiver answered 503."), now=now
        )
        assert settled.status == Delivery.Status.PENDING
        waits.append((settled.next_try_at - now).total_seconds())
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    destination.refresh_from_db()
    assert destination.failures_in_row == 11
    assert services.destinations_failing() == [destination]

    settled = services.delivery_settle(
        delivery.id, Outcome(False, True, None, 5000.0, "No answer within 5 s."),
        now=start + timedelta(hours=24),
    )  # fmt: skip
    assert settled.status == Delivery.Status.FAILED
    assert settled.error == "Gave up after 24 h and 12 tries: No answer within 5 s."


def test_the_last_retry_is_at_the_deadline_and_retry_after_is_honoured():
    destination = services.destination_create(kind="webhook", url="http://a/1")
    delivery = pending(destination)
    near_end = delivery.created_at + timedelta(hours=24) - timedelta(milliseconds=500)
    settled = services.delivery_settle(
        delivery.id, Outcome(False, True, 500, 1.0, "x"), now=near_end
    )
    assert settled.next_try_at == delivery.created_at + timedelta(hours=24)
    other = pending(destination)
    now = other.created_at
    settled = services.delivery_settle(
        other.id, Outcome(False, True, 429, 1.0, "slow down", retry_after=30.0), now=now
    )
    assert (settled.next_try_at - now).total_seconds() == 30.0


def test_a_refusal_fails_at_once_and_a_success_resets_the_health():
    destination = services.destination_create(kind="webhook", url="http://a/1")
    first, second = pending(destination), pending(destination)
    settled = services.delivery_settle(
        first.id, Outcome(False, False, 400, 2.0, "The receiver answered 400: bad field")
    )
    assert (settled.status, settled.tries, settled.http_status) == ("failed", 1, 400)
    assert settled.error == "The receiver answered 400: bad field"
    assert services.outbox_head(destination.id).id == second.id  # the queue moves on
    settled = services.delivery_settle(second.id, Outcome(True, False, 200, 4.5))
    assert (settled.status, settled.latency_ms) == ("delivered", 4.5)
    destination.refresh_from_db()
    assert (destination.failures_in_row, destination.last_error) == (0, "")
    assert destination.last_ok_at is not None
    assert services.outbox_head(destination.id) is None


def test_heads_are_the_oldest_pending_row_of_each_enabled_destination():
    one = services.destination_create(kind="webhook", url="http://a/1")
    two = services.destination_create(kind="webhook", url="http://a/2")
    for second in (0, 5, 10):
        services.outbox_add(store(second=second))
    firsts = {d: min(Delivery.objects.filter(destination=d).values_list("id", flat=True))
              for d in (one, two)}  # fmt: skip
    heads = {h.destination_id: h.delivery_id for h in services.outbox_heads()}
    assert heads == {one.id: firsts[one], two.id: firsts[two]}
    services.destination_set_enabled(two, False)
    assert [h.destination_id for h in services.outbox_heads()] == [one.id]


def test_query_values_are_masked_and_a_webhook_secret_can_be_cleared():
    hook = services.destination_create(
        kind="webhook", url="https://desk.example/hook?token=abcdefghijklmnopqrstuvwxyz&v=2&flag",
        secret="a-long-shared-secret-1234",
    )  # fmt: skip
    assert services.url_masked(hook) == "https://desk.example/hook?token=••••wxyz&v=••••&flag"
    services.destination_update(hook, clear_secret=True)
    hook.refresh_from_db()
    assert hook.secret == ""
    telegram = services.destination_create(kind="telegram", secret=TOKEN, chat_id="1")
    with pytest.raises(ValidationError, match="Only a webhook's secret"):
        services.destination_update(telegram, clear_secret=True)


def test_a_text_placeholder_outside_quotes_gets_a_hint_and_other_errors_do_not():
    said = errors({"kind": "webhook", "url": "http://a", "template": '{"s": {{symbol}}}'})
    assert "goes inside quotes" in said["template"][0]
    said = errors({"kind": "webhook", "url": "http://a", "template": '{"s": "{{symbol}}",}'})
    assert "goes inside quotes" not in said["template"][0]


def test_the_worker_copy_of_the_filters_never_fails_a_signal(monkeypatch):
    """The engine's copy of the filters may be up to a second old: a destination removed or
    disabled meanwhile gets nothing, and the signal's transaction still commits."""
    gone = services.destination_create(kind="webhook", url="http://a/1")
    off = services.destination_create(kind="webhook", url="http://a/2")
    kept = services.destination_create(kind="webhook", url="http://a/3")
    services.destination_filters_refresh()
    monkeypatch.setattr(services, "_filters_changed", lambda: None)  # as in another process
    services.destination_remove(gone.id)
    services.destination_set_enabled(off, False)
    assert services.outbox_add(store()) == 1
    assert list(Delivery.objects.values_list("destination_id", flat=True)) == [kept.id]
    added = services.destination_create(kind="webhook", url="http://a/4")
    assert services.outbox_add(store(second=5)) == 1  # not seen yet…
    services.destination_filters_refresh()  # …until the sender's next poll
    assert services.outbox_add(store(second=10)) == 2
    assert added.deliveries.count() == 1
