"""The REST mirror: GET /api/signals/ and /api/engine/ with the token or a session."""

import pytest
from django.test import Client

from tests.factories import make_rule, make_running_engine
from tests.signals.helpers import feed_token, make_signal

pytestmark = pytest.mark.django_db


def test_api_signals_needs_the_token_or_a_session(client, admin_client):
    make_signal(1)
    assert client.get("/api/signals/").status_code == 403
    assert client.get("/api/signals/?token=wrong").status_code == 403
    resp = client.get("/api/signals/", headers={"Authorization": f"Bearer {feed_token()}"})
    assert resp.status_code == 200 and len(resp.json()["signals"]) == 1
    assert admin_client.get("/api/signals/").status_code == 200


def test_api_signals_since_symbol_limit():
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    rows = [make_signal(n, symbol="AAPL" if n % 2 else "MSFT") for n in range(1, 8)]
    body = client.get(f"/api/signals/?since={rows[1].id}&limit=3").json()
    assert [s["id"] for s in body["signals"]] == [r.id for r in rows[2:5]]
    assert body["last_id"] == rows[4].id
    assert body["signals"][0] == {
        **rows[2].to_event(),
        "outcomes": {"1m": None, "5m": None, "15m": None},
    }
    msft = client.get("/api/signals/?symbol=msft").json()["signals"]
    assert {s["symbol"] for s in msft} == {"MSFT"} and len(msft) == 3
    assert client.get(f"/api/signals/?since={rows[-1].id}").json() == {
        "signals": [], "last_id": rows[-1].id}  # fmt: skip


@pytest.mark.parametrize("query", ["since=-1", "since=x", "limit=0", "limit=5000", "limit=a"])
def test_api_signals_bad_parameters_are_400_with_a_sentence(query):
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    resp = client.get(f"/api/signals/?{query}")
    assert resp.status_code == 400
    assert resp.json()["event"] == "error" and resp.json()["message"]


def test_api_engine(client):
    resp = client.get("/api/engine/", headers={"Authorization": f"Bearer {feed_token()}"})
    assert resp.status_code == 200
    assert resp.json()["state"] == "offline" and resp.json()["desired"] == "stopped"
    assert (resp.json()["rule_id"], resp.json()["rule_ids"]) == (None, [])
    assert client.get("/api/engine/").status_code == 403


def test_api_engine_names_every_rule_the_run_holds(client):
    first, second = make_rule(name="First"), make_rule(name="Second")
    make_running_engine(rules=[first, second])
    body = client.get("/api/engine/", headers={"Authorization": f"Bearer {feed_token()}"}).json()
    assert body["state"] == "running"
    assert (body["rule_id"], body["rule_ids"]) == (first.pk, [first.pk, second.pk])


FIVE_THOUSAND_DIGITS = "9" * 5000


@pytest.mark.parametrize("name", ["since", "limit"])
@pytest.mark.parametrize("value", ["²", "٣", FIVE_THOUSAND_DIGITS, "-3", "1.5", " ", "%00"])
def test_api_signals_parameters_outside_ascii_whole_numbers_are_400(name, value):
    make_signal(1)
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    resp = client.get("/api/signals/", {name: value})
    assert resp.status_code == 400
    body = resp.json()
    assert set(body) == {"event", "message"} and body["event"] == "error"
    assert name in body["message"] and len(body["message"]) < 200


def test_api_signals_empty_parameters_mean_the_defaults():
    rows = [make_signal(n) for n in range(1, 4)]
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    body = client.get("/api/signals/?since=&limit=").json()
    assert [s["id"] for s in body["signals"]] == [r.id for r in rows]
    assert client.get("/api/signals/?since=9223372036854775807").json()["signals"] == []
    assert client.get("/api/signals/?since=9223372036854775808").status_code == 400
