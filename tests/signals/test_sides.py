"""A rule's side (DESIGN §7.2) in every output: the stored row, REST, the program socket
(catch-up and live), the CSV export; null/empty when the rule has none."""

import csv
import io
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from engine.core.bars import Bar
from engine.core.machine import SymbolRules
from engine.core.rules import validate_definition
from signals import events, realtime
from signals.models import Signal
from signals.services import signal_record
from tests.signals.helpers import T0, communicator, feed_token

BUY = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": 100}],
    "cooldown_sec": 0,
    "side": "buy",
}
SELL = {**BUY, "conditions": [{"left": "PRICE", "op": ">", "right": 101}], "side": "sell"}
NONE = {k: v for k, v in BUY.items() if k != "side"}


def store(side: str | None, *, rule_id: int, symbol: str = "AAPL") -> Signal:
    row = signal_record(
        time=T0, symbol=symbol, price=102.5, rule_id=rule_id, rule_name=f"Rule {rule_id}",
        bar_seconds=5, values={"PRICE": 102.5}, side=side,
    )  # fmt: skip
    assert row is not None
    return row


@pytest.mark.django_db
def test_the_row_keeps_the_side_and_its_event_carries_it():
    buy, sell, none = store("buy", rule_id=1), store("sell", rule_id=2), store(None, rule_id=3)
    stored = {row.rule_id: row for row in Signal.objects.all()}
    assert (stored[1].side, stored[2].side, stored[3].side) == ("buy", "sell", "")
    assert [row.to_event()["side"] for row in (buy, sell, none)] == ["buy", "sell", None]
    assert json.loads(events.text(none.to_event()))["side"] is None


@pytest.mark.django_db
def test_three_rules_on_one_bar_are_three_rows_unique_per_rule():
    for rule_id, side in ((1, "buy"), (2, "sell"), (3, None)):
        store(side, rule_id=rule_id)
    assert signal_record(
        time=T0, symbol="AAPL", price=1.0, rule_id=2, rule_name="again", bar_seconds=5,
        values={}, side="sell",
    ) is None  # fmt: skip
    assert Signal.objects.count() == 3


@pytest.mark.django_db
def test_rest_sends_the_side_of_each_signal():
    rows = [store("buy", rule_id=1), store(None, rule_id=2), store("sell", rule_id=3)]
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    body = client.get("/api/signals/").json()
    assert [(s["id"], s["side"]) for s in body["signals"]] == [
        (rows[0].id, "buy"), (rows[1].id, None), (rows[2].id, "sell"),
    ]  # fmt: skip
    assert body["signals"][0] == {
        **rows[0].to_event(),
        "outcomes": {"1m": None, "5m": None, "15m": None},
    }


@pytest.mark.django_db
def test_the_csv_export_ends_each_row_with_the_side(admin_client):
    store("sell", rule_id=1)
    store(None, rule_id=2)
    response = admin_client.get("/signals/export.csv")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    side = len(events.CSV_HEADER) - 1  # the outcome columns come after it
    assert rows[0][: side + 1] == list(events.CSV_HEADER) and rows[0][side] == "side"
    assert [(row[4], row[side]) for row in rows[1:]] == [("1", "sell"), ("2", "")]


@pytest.fixture
def fresh_broadcast_state():
    realtime.reset_for_tests()
    yield
    realtime.reset_for_tests()


@pytest.mark.django_db(transaction=True)
async def test_the_program_socket_sends_the_side_on_catch_up_and_live(fresh_broadcast_state):
    first = await sync_to_async(store)("buy", rule_id=1)
    token = await sync_to_async(feed_token)()
    comm = communicator("/ws/signals/?since=0", token=token)
    assert (await comm.connect())[0]
    caught_up = json.loads(await comm.receive_from(timeout=3))
    assert (caught_up["id"], caught_up["side"]) == (first.id, "buy")
    live = await sync_to_async(store)(None, rule_id=2)
    await realtime.publish(live.to_event())
    event = json.loads(await comm.receive_from(timeout=3))
    assert (event["id"], event["side"]) == (live.id, None)
    assert "side" in event and event == live.to_event()
    await comm.disconnect()


def test_the_core_stamps_each_rule_side_on_its_own_signal():
    """Three rules on one symbol fire on the same bar, each with its side and rule id."""
    rules = [validate_definition(d) for d in (BUY, SELL, NONE)]
    machine = SymbolRules(rules, "AAPL", rule_ids=[11, 12, 13])
    fired = machine.on_bar(Bar("AAPL", 1_765_895_400, 5, 102.0, 103.0, 101.0, 102.5, 10))
    assert [(s.rule_id, s.side) for s in fired] == [(11, "buy"), (12, "sell"), (13, None)]
    made = [events.signal_from(s, id=n, rule_name="r", bar_seconds=5) for n, s in enumerate(fired)]
    assert [e["side"] for e in made] == ["buy", "sell", None]
