"""Signals of any instrument (DESIGN §7.1): the signal's ``symbol`` is the item text (up to
40 characters) and ``contract`` what the feed resolved; the history filter, the REST
``?symbol=`` and the socket's ``symbols`` take item texts in any spelling the watchlists
take, and refuse a bad one with the item parser's sentence."""

import html
import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from engine.core.instruments import MAX_ITEM_LENGTH
from signals import realtime
from signals.models import Signal
from tests.factories import logged_in_client
from tests.signals.helpers import communicator, feed_token, make_signal
from tests.watchlists.test_items import BAD, BAD_CASES, BAD_IDS, FIVE

LONGEST = "ABCDEFGHIJKL:CRYPTO:OSE.JPN:USD"  # an item of 31 characters the parser accepts


def test_a_signal_holds_the_longest_item_and_its_contract(db):
    assert Signal._meta.get_field("symbol").max_length == MAX_ITEM_LENGTH
    row = make_signal(1, symbol=LONGEST)
    row.refresh_from_db()
    assert row.symbol == LONGEST and row.contract == {}
    contract = {"local_symbol": "ESZ6", "sec_type": "FUT", "exchange": "CME",
                "currency": "USD", "min_tick": 0.25}  # fmt: skip
    Signal.objects.filter(pk=row.pk).update(contract=contract)
    assert Signal.objects.get(pk=row.pk).contract == contract


# The history page and its export


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("typed", "stored"),
    [("es:fut:cme", "ES:FUT:CME"), (" eur.usd:cash ", "EURUSD:CASH"),
     ("sap:stk:ibis:eur", "SAP:STK:IBIS:EUR"), ("SPX:IND:CBOE", "SPX:IND:CBOE"),
     ("aapl:stk", "AAPL")],
)  # fmt: skip
def test_history_filters_by_item_text(typed, stored):
    client = logged_in_client()
    wanted = [make_signal(n, symbol=symbol) for n, symbol in enumerate(FIVE, start=1)]
    resp = client.get("/signals/", {"symbol": typed})
    assert resp.status_code == 200
    page = resp.content.decode()
    shown = [row for row in wanted if f'data-signal-id="{row.id}"' in page]
    assert [row.symbol for row in shown] == [stored]
    export = client.get("/signals/export.csv", {"symbol": typed})
    export = b"".join(export.streaming_content).decode()
    assert len(export.strip().splitlines()) == 2 and f",{stored}," in export


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_history_refuses_a_bad_item_with_its_sentence(raw, sentence):
    client = logged_in_client()
    resp = client.get("/signals/", {"symbol": raw})
    assert resp.status_code == 200
    assert sentence in html.unescape(resp.content.decode())
    export = client.get("/signals/export.csv", {"symbol": raw})
    assert export.status_code == 400 and sentence in export.content.decode()


# REST


@pytest.mark.django_db
def test_rest_filters_by_item_text():
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    rows = {symbol: make_signal(n, symbol=symbol) for n, symbol in enumerate(FIVE, start=1)}
    for typed, stored in [("es:fut:cme", "ES:FUT:CME"), ("EUR/USD:CASH", "EURUSD:CASH"),
                          ("spx:ind:cboe", "SPX:IND:CBOE")]:  # fmt: skip
        body = client.get("/api/signals/", {"symbol": typed}).json()
        assert body["signals"] == [
            {**rows[stored].to_event(), "outcomes": {"1m": None, "5m": None, "15m": None}}
        ]
    assert len(client.get("/api/signals/", {"symbol": " "}).json()["signals"]) == 5


@pytest.mark.django_db
@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_rest_refuses_a_bad_item_with_its_sentence(raw, sentence):
    client = Client(headers={"Authorization": f"Bearer {feed_token()}"})
    resp = client.get("/api/signals/", {"symbol": raw})
    assert resp.status_code == 400
    assert resp.json() == {"event": "error", "message": sentence}


# The program socket


@pytest.fixture
def fresh_broadcast_state():
    realtime.reset_for_tests()
    yield
    realtime.reset_for_tests()


async def receive(comm) -> dict:
    return json.loads(await comm.receive_from(timeout=3))


async def connect_feed(path="/ws/signals/"):
    comm = communicator(path, token=await sync_to_async(feed_token)())
    connected, _ = await comm.connect()
    assert connected
    return comm


@pytest.mark.django_db(transaction=True)
async def test_the_socket_filters_by_item_text(fresh_broadcast_state):
    await realtime.bridge_connected()
    comm = await connect_feed("/ws/signals/?symbols=es:fut:cme,EUR.USD:CASH")
    rows = [await sync_to_async(make_signal)(n, symbol=s) for n, s in enumerate(FIVE, start=1)]
    for row in rows:
        await realtime.publish(row.to_event())
    assert [(await receive(comm))["symbol"] for _ in range(2)] == ["ES:FUT:CME", "EURUSD:CASH"]
    await comm.send_json_to({"action": "subscribe", "symbols": ["sap:stk:ibis:eur"]})
    assert (await receive(comm))["symbols"] == ["ES:FUT:CME", "EURUSD:CASH", "SAP:STK:IBIS:EUR"]
    await comm.send_json_to({"action": "unsubscribe", "symbols": ["ES:FUT:CME", "EURUSD:CASH"]})
    assert (await receive(comm))["symbols"] == ["SAP:STK:IBIS:EUR"]
    later = await sync_to_async(make_signal)(9, symbol="SAP:STK:IBIS:EUR")
    await realtime.publish(later.to_event())
    assert (await receive(comm))["id"] == later.id
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
async def test_the_socket_refuses_a_bad_item_with_its_sentence(
    fresh_broadcast_state, raw, sentence
):
    comm = await connect_feed()
    await comm.send_json_to({"action": "subscribe", "symbols": ["AAPL", raw]})
    assert await receive(comm) == {"event": "error", "message": sentence}
    await comm.send_json_to({"action": "ping"})
    assert await receive(comm) == {"event": "pong"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_query_refuses_a_bad_item_with_its_sentence(fresh_broadcast_state):
    comm = await connect_feed("/ws/signals/?symbols=AAPL,ES:FUT")
    assert await receive(comm) == {"event": "error", "message": BAD["future without exchange"][1]}
    assert await comm.receive_output(timeout=1) == {"type": "websocket.close", "code": 4400}
