"""One try against a real local receiver: what each kind sends, the headers, and what each
answer (or no answer) comes to."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from alerts import transport
from alerts.models import Destination
from tests.alerts.receiver import Receiver
from tests.conftest import free_port

TOKEN = "123456789:AAEabcdefghijklmnopqrstuvwxyz012345"
EVENT = {
    "event": "signal", "symbol": "AAPL", "price": 189.25, "rule_id": 1,
    "timestamp": "2026-12-01T14:30:05Z", "id": 42, "rule_name": "Default", "bar_seconds": 5,
    "values": {"MA5": 189.1}, "side": "buy",
}  # fmt: skip


@pytest.fixture
def rx():
    with Receiver() as receiver:
        yield receiver


async def try_once(destination: Destination, *, timeout: float = 5.0):  # noqa: ASYNC109
    async with transport.client() as client:
        request = transport.build(destination, EVENT, key="42")
        return await transport.send(client, request, timeout=timeout)


async def test_a_webhook_posts_the_signal_event_signed(rx):
    secret = "a-shared-secret"
    outcome = await try_once(Destination(kind="webhook", url=f"{rx.url}/hook", secret=secret))
    assert (outcome.ok, outcome.http_status, outcome.error) == (True, 200, "")
    got = rx.requests[0]
    assert got.path == "/hook"
    assert json.loads(got.body) == EVENT
    assert got.headers["X-Scalp-Delivery"] == "42"
    assert got.headers["Content-Type"] == "application/json"
    expected = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Scalp-Signature"] == f"sha256={expected}"


async def test_a_webhook_template_is_the_body_and_no_secret_no_signature(rx):
    template = '{"content": "{{side}} {{symbol}} {{price}}", "ref": {{id}}}'
    await try_once(Destination(kind="webhook", url=rx.url, template=template))
    got = rx.requests[0]
    assert json.loads(got.body) == {"content": "buy AAPL 189.25", "ref": 42}
    assert "X-Scalp-Signature" not in got.headers


async def test_telegram_and_discord_get_a_text_line(rx):
    await try_once(Destination(kind="telegram", url=rx.url, secret=TOKEN, chat_id="-1001"))
    await try_once(Destination(kind="discord", url=f"{rx.url}/api/webhooks/1/tok"))
    telegram, discord = rx.requests
    assert telegram.path == f"/bot{TOKEN}/sendMessage"
    line = "BUY AAPL at 189.25 — Default, bar closed 2026-12-01 14:30:05 UTC · #42"
    assert json.loads(telegram.body) == {"chat_id": "-1001", "text": line}
    assert discord.path == "/api/webhooks/1/tok"
    assert json.loads(discord.body) == {"content": line}


def test_the_chat_line_shows_the_price_at_the_instruments_tick():
    from alerts.transport import message_text

    event = {"symbol": "ES:FUT:CME", "price": 6000.5, "side": "sell", "rule_name": "Fade",
             "timestamp": "2026-12-01T14:30:05Z", "id": 7,
             "contract": {"local_symbol": "ESZ6", "min_tick": 0.25}}  # fmt: skip
    assert message_text(event) == (
        "SELL ES:FUT:CME at 6000.50 — Fade, bar closed 2026-12-01 14:30:05 UTC · #7"
    )
    fx = {**event, "symbol": "EURUSD:CASH", "price": 1.08, "contract": {"min_tick": 5e-05}}
    assert " at 1.08000 — " in message_text(fx)


@pytest.mark.parametrize(
    ("answer", "ok", "retry", "status", "says"),
    [
        ("204", True, False, 204, ""),
        ("400", False, False, 400, "The receiver answered 400: receiver says no"),
        ("404", False, False, 404, "The receiver answered 404: receiver says no"),
        ("429", False, True, 429, "The receiver answered 429: receiver says no"),
        ("500", False, True, 500, "The receiver answered 500: receiver says no"),
        ("503", False, True, 503, "The receiver answered 503"),
        ("redirect", False, False, 302, "redirects are not followed"),
        ("reset", False, True, None, "The connection broke before an answer"),
    ],
)
async def test_each_answer_comes_to_a_sentence(rx, answer, ok, retry, status, says):
    rx.script = [answer]
    outcome = await try_once(Destination(kind="webhook", url=rx.url))
    assert (outcome.ok, outcome.retry, outcome.http_status) == (ok, retry, status)
    assert says in outcome.error
    if answer == "redirect":
        assert f"to {rx.url}/elsewhere" in outcome.error
        assert [r.path for r in rx.requests] == ["/"]  # the Location was not requested
    if answer == "429":
        assert outcome.retry_after == 1.0


async def test_a_receiver_that_never_answers_is_cut_off(rx):
    rx.script = ["hang"]
    rx.hang_seconds = 3
    outcome = await try_once(Destination(kind="webhook", url=rx.url), timeout=0.5)
    assert (outcome.ok, outcome.retry, outcome.http_status) == (False, True, None)
    assert outcome.error == "No answer within 0.5 s."
    assert outcome.latency_ms < 3000


async def test_nothing_listening_is_retried_and_the_bot_token_never_shows():
    port = free_port()
    destination = Destination(kind="telegram", url=f"http://127.0.0.1:{port}", secret=TOKEN,
                              chat_id="1")  # fmt: skip
    outcome = await try_once(destination)
    assert (outcome.ok, outcome.retry) == (False, True)
    assert outcome.error.startswith("Could not connect")
    assert TOKEN not in outcome.error


def test_retry_after_in_seconds_or_as_a_date():
    assert transport._retry_after("7") == 7.0
    assert transport._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert transport._retry_after("soon") is None
    assert transport._retry_after("9" * 5000) is None
