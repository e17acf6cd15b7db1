"""Socket consumers with WebsocketCommunicator: auth, Origin, resume, filters, errors."""

import json

import pytest
from asgiref.sync import sync_to_async

from signals import realtime
from tests.signals.helpers import communicator, engine_token, feed_token, make_signal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_broadcast_state():
    realtime.reset_for_tests()
    yield
    realtime.reset_for_tests()


async def receive(comm) -> dict:
    return json.loads(await comm.receive_from(timeout=3))


async def connect_feed(path="/ws/signals/", **kwargs):
    token = await sync_to_async(feed_token)()
    comm = communicator(path, token=token, **kwargs)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_feed_rejects_a_missing_or_wrong_token_before_accept():
    await sync_to_async(feed_token)()
    for comm in (communicator("/ws/signals/"), communicator("/ws/signals/", token="nope"),
                 communicator("/ws/signals/?token=nope")):  # fmt: skip
        connected, _ = await comm.connect()
        assert not connected
    # The engine's bridge token is a different secret.
    bridge = await sync_to_async(engine_token)()
    connected, _ = await communicator("/ws/signals/", token=bridge).connect()
    assert not connected


async def test_feed_accepts_the_token_in_the_query_string():
    token = await sync_to_async(feed_token)()
    comm = communicator(f"/ws/signals/?token={token}")
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"action": "ping"})
    assert await receive(comm) == {"event": "pong"}
    await comm.disconnect()


async def test_since_resumes_from_the_database_then_goes_live_without_duplicates():
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 6)]
    comm = await connect_feed(f"/ws/signals/?since={rows[1].id}")
    backlog = [await receive(comm) for _ in range(3)]
    assert [e["id"] for e in backlog] == [r.id for r in rows[2:]]
    assert set(backlog[0]) >= {"event", "symbol", "price", "rule_id", "timestamp", "id"}
    assert backlog[0]["timestamp"] == "2025-12-16T14:30:15Z"
    row = await sync_to_async(make_signal)(6)
    await realtime.bridge_connected()  # first bridge: the broadcast position is now id 6
    await realtime.publish(row.to_event())  # a re-delivery of 6: not sent twice
    assert await comm.receive_nothing(timeout=0.2)
    row7 = await sync_to_async(make_signal)(7)
    await realtime.publish(row7.to_event())
    assert (await receive(comm))["id"] == row7.id
    await comm.disconnect()


async def test_a_gap_in_ids_is_filled_from_the_database_in_order():
    await realtime.bridge_connected()
    comm = await connect_feed()
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 5)]
    await realtime.publish(rows[-1].to_event())  # the bridge missed 1..3
    assert [(await receive(comm))["id"] for _ in range(4)] == [r.id for r in rows]
    await comm.disconnect()


async def test_symbol_filter_from_the_query_and_from_frames():
    await realtime.bridge_connected()
    comm = await connect_feed("/ws/signals/?symbols=msft,tsla")
    aapl = await sync_to_async(make_signal)(1, symbol="AAPL")
    msft = await sync_to_async(make_signal)(2, symbol="MSFT")
    await realtime.publish(aapl.to_event())
    await realtime.publish(msft.to_event())
    assert (await receive(comm))["symbol"] == "MSFT"
    await comm.send_json_to({"action": "unsubscribe", "symbols": ["MSFT"]})
    assert (await receive(comm)) == {"event": "subscribed", "symbols": ["TSLA"], "bars": False}
    await comm.send_json_to({"action": "subscribe", "symbols": ["AAPL"]})
    assert (await receive(comm))["symbols"] == ["AAPL", "TSLA"]
    later = await sync_to_async(make_signal)(3, symbol="AAPL")
    await realtime.publish(later.to_event())
    assert (await receive(comm))["id"] == later.id
    await comm.disconnect()


async def test_bars_stream_and_status_events():
    comm = await connect_feed()
    bar = {"event": "bar", "symbol": "AAPL", "time": "2025-12-16T14:30:00Z", "open": 1.0}
    bar |= {"high": 1.0, "low": 1.0, "close": 1.0, "volume": 10.0, "values": {"MA5": 1.0}}
    await realtime.publish(bar)
    status = {"event": "status", "state": "running", "message": "Running."}
    await realtime.publish(status)
    assert await receive(comm) == status  # bars only after subscribing to the stream
    await comm.send_json_to({"action": "subscribe", "stream": "bars"})
    assert (await receive(comm))["bars"] is True
    await realtime.publish(bar)
    assert await receive(comm) == bar
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ("not json", "Frames must be JSON objects"),
        ("[1, 2]", "Frames must be JSON objects"),
        ('{"action": "explode"}', "Unknown action 'explode'"),
        ('{"foo": 1}', 'Missing "action"'),
        ('{"action": "subscribe", "symbols": ["AA$"]}', "not a valid symbol"),
        ('{"action": "subscribe", "stream": "ticks"}', "Unknown stream 'ticks'"),
        ('{"action": "subscribe"}', 'needs "symbols" or "stream"'),
    ],
)
async def test_bad_frames_get_an_error_event_and_the_connection_stays_open(frame, fragment):
    comm = await connect_feed()
    await comm.send_to(text_data=frame)
    event = await receive(comm)
    assert event["event"] == "error" and fragment in event["message"]
    await comm.send_json_to({"action": "ping"})
    assert await receive(comm) == {"event": "pong"}
    await comm.disconnect()


async def test_a_bad_since_is_explained_then_closed():
    comm = await connect_feed("/ws/signals/?since=abc")
    event = await receive(comm)
    assert event["event"] == "error" and "since='abc' is not a signal id" in event["message"]
    assert (await comm.receive_output(timeout=1))["type"] == "websocket.close"


async def ui_headers(*, origin: str = "http://127.0.0.1:8000", login: bool = True):
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    headers = [(b"origin", origin.encode()), (b"host", b"127.0.0.1:8000")]
    if login:

        def session_cookie():
            user = get_user_model().objects.create_user("ui", password="pw-123456789")
            client = Client()
            client.force_login(user)
            return client.cookies[settings.SESSION_COOKIE_NAME].value

        cookie = await sync_to_async(session_cookie)()
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return headers


async def test_ui_socket_needs_a_session():
    connected, _ = await communicator("/ws/ui/", headers=await ui_headers(login=False)).connect()
    assert not connected


async def test_ui_socket_checks_the_origin():
    headers = await ui_headers(origin="http://evil.example")
    connected, _ = await communicator("/ws/ui/", headers=headers).connect()
    assert not connected


async def test_ui_socket_gets_html_fragments_for_htmx():
    await realtime.bridge_connected()
    comm = communicator("/ws/ui/", headers=await ui_headers())
    connected, _ = await comm.connect()
    assert connected
    row = await sync_to_async(make_signal)(1)
    await realtime.publish(row.to_event())
    html = await comm.receive_from(timeout=3)
    assert 'hx-swap-oob="afterbegin:#live-signals"' in html
    assert f'data-signal-id="{row.id}"' in html and "AAPL" in html
    await realtime.publish({"event": "status", "state": "error", "message": "No <b>TWS</b>."})
    html = await comm.receive_from(timeout=3)
    assert 'id="engine-status"' in html and 'data-state="error"' in html
    assert "No &lt;b&gt;TWS&lt;/b&gt;." in html  # escaped, never injected
    await comm.disconnect()


async def test_bridge_needs_the_engine_token_and_fans_events_out():
    token = await sync_to_async(feed_token)()
    connected, _ = await communicator("/ws/engine/", token=token).connect()
    assert not connected, "the feed token must not open the bridge"
    bridge = communicator("/ws/engine/", token=await sync_to_async(engine_token)())
    connected, _ = await bridge.connect()
    assert connected
    client = await connect_feed()
    row = await sync_to_async(make_signal)(1)
    await bridge.send_json_to({"event": "hello"})
    await bridge.send_json_to(row.to_event())
    assert (await receive(client))["id"] == row.id
    await realtime.engine_command("stop")
    assert await receive(bridge) == {"command": "stop"}
    await bridge.disconnect()
    await client.disconnect()


async def test_bridge_reconnect_sends_what_the_web_side_missed():
    token = await sync_to_async(engine_token)()
    bridge = communicator("/ws/engine/", token=token)
    assert (await bridge.connect())[0]
    client = await connect_feed()
    first = await sync_to_async(make_signal)(1)
    await bridge.send_json_to(first.to_event())
    assert (await receive(client))["id"] == first.id
    await bridge.disconnect()
    missed = [await sync_to_async(make_signal)(n) for n in (2, 3)]  # stored while down
    bridge = communicator("/ws/engine/", token=token)
    assert (await bridge.connect())[0]
    assert [(await receive(client))["id"] for _ in missed] == [m.id for m in missed]
    await bridge.send_json_to(missed[-1].to_event())  # the worker re-sends: not twice
    assert await client.receive_nothing(timeout=0.2)
    await bridge.disconnect()
    await client.disconnect()


async def test_live_signals_published_while_the_backlog_is_read_follow_it_in_order(monkeypatch):
    """The in-process layer hands live events straight to the consumer; one that arrives while
    the consumer is still reading its backlog waits and goes out after it, once."""
    from asgiref.sync import async_to_sync

    from signals import consumers

    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    await realtime.bridge_connected()
    real_backlog, live = consumers._backlog, []

    def backlog_with_a_live_signal_meanwhile(after, symbols, limit):
        batch = real_backlog(after, symbols, limit)
        if not live:
            row = make_signal(10)
            live.append(row)
            async_to_sync(realtime.publish)(row.to_event())  # runs on the consumer's loop
        return batch

    monkeypatch.setattr(consumers, "_backlog", backlog_with_a_live_signal_meanwhile)
    comm = await connect_feed(f"/ws/signals/?since={rows[0].id}")
    got = [(await receive(comm))["id"] for _ in range(3)]
    assert got == [rows[1].id, rows[2].id, live[0].id]
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()
