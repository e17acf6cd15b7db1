"""Socket consumers with WebsocketCommunicator: auth, Origin, resume, filters, errors."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from engine.tokens import feed_token_rotate
from signals import realtime, stream
from signals.consumers import SignalFeedConsumer
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
    row = await sync_to_async(make_signal)(6)  # stored while the bridge was down
    await realtime.bridge_connected()  # the bridge is back: every socket reads what it lacks
    assert (await receive(comm))["id"] == row.id
    await realtime.publish(row.to_event())  # a re-delivery of 6: not sent twice
    assert await comm.receive_nothing(timeout=0.2)
    row7 = await sync_to_async(make_signal)(7)
    await realtime.publish(row7.to_event())
    assert (await receive(comm))["id"] == row7.id
    await comm.disconnect()


async def test_without_since_a_program_starts_at_the_newest_stored_signal():
    old = await sync_to_async(make_signal)(1)
    comm = await connect_feed()
    await realtime.publish(old.to_event())  # stored before it connected: not sent
    new = await sync_to_async(make_signal)(2)
    await realtime.publish(new.to_event())
    assert (await receive(comm))["id"] == new.id
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_signal_that_follows_the_last_one_sent_needs_no_query(monkeypatch):
    await sync_to_async(make_signal)(0)  # the socket starts after it: the next id is new
    comm = await connect_feed()
    reads = []
    real_read_page = SignalFeedConsumer.read_page

    def counted(self, after, upto):
        reads.append((after, upto))
        return real_read_page(self, after, upto)

    monkeypatch.setattr(SignalFeedConsumer, "read_page", counted)
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    for row in rows:
        await realtime.publish(row.to_event())
    assert [(await receive(comm))["id"] for _ in rows] == [r.id for r in rows]
    assert reads == []
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
        ("[" * 1000 + "]" * 1000, "nested too deeply"),
        ('{"action": "ping", "n": 1' + "0" * 5000 + "}", "is too long"),
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


@pytest.mark.parametrize(
    ("since", "fragment"),
    [("abc", "since='abc' is not a whole number"), ("%C2%B2", "since='²' is not a whole number")],
)
async def test_a_bad_since_is_explained_then_closed(since, fragment):
    comm = await connect_feed(f"/ws/signals/?since={since}")
    event = await receive(comm)
    assert event["event"] == "error" and fragment in event["message"]
    assert await comm.receive_output(timeout=1) == {"type": "websocket.close", "code": 4400}


async def test_a_rotated_token_closes_the_programs_connected_with_the_old_one():
    comm = await connect_feed()
    await sync_to_async(feed_token_rotate)()  # as the Settings page or `feedtoken --rotate` do
    closed = await comm.receive_output(timeout=1 + realtime.WATCH_SECONDS)
    assert closed == {"type": "websocket.close", "code": 4403}


async def test_a_signal_whose_wake_up_was_lost_arrives_anyway():
    comm = await connect_feed()
    row = await sync_to_async(make_signal)(1)  # stored; no publish (a lost layer message)
    assert (await receive(comm))["id"] == row.id  # within two rounds of the watch
    await realtime.publish(row.to_event())  # the late wake-up: not sent twice
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_socket_that_stays_behind_is_closed_and_resumes_by_since(monkeypatch):
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    monkeypatch.setattr(stream, "BEHIND_SECONDS", 0.2)
    monkeypatch.setattr(stream, "unsent_bytes", lambda protocol: stream.MAX_UNSENT + 1)
    comm = await connect_feed("/ws/signals/?since=0")
    closed = await comm.receive_output(timeout=2)  # nothing is sent to a socket that is behind
    assert closed == {"type": "websocket.close", "code": 4008}
    monkeypatch.undo()
    comm = await connect_feed(f"/ws/signals/?since={rows[0].id}")
    assert [(await receive(comm))["id"] for _ in rows[1:]] == [r.id for r in rows[1:]]
    await comm.disconnect()


async def ui_headers(*, origin: str = "http://127.0.0.1:8000", login: bool = True):
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
    """A live signal that arrives while the socket reads its backlog waits for the backlog:
    it goes out after it, once."""
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    real_read_page, live = SignalFeedConsumer.read_page, []

    def page_with_a_live_signal_meanwhile(self, after, upto):
        page = real_read_page(self, after, upto)
        if not live:
            row = make_signal(10)
            live.append(row)
            async_to_sync(realtime.publish)(row.to_event())  # runs on the consumer's loop
        return page

    monkeypatch.setattr(SignalFeedConsumer, "read_page", page_with_a_live_signal_meanwhile)
    comm = await connect_feed(f"/ws/signals/?since={rows[0].id}")
    got = [(await receive(comm))["id"] for _ in range(3)]
    assert got == [rows[1].id, rows[2].id, live[0].id]
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_long_backlog_goes_out_in_pages_in_order(monkeypatch):
    monkeypatch.setattr(stream, "PAGE_ROWS", 2)
    rows = [await sync_to_async(make_signal)(n, symbol=("AAPL", "MSFT")[n % 2]) for n in range(7)]
    comm = await connect_feed("/ws/signals/?since=0&symbols=MSFT")
    msft = [r.id for r in rows if r.symbol == "MSFT"]
    assert [(await receive(comm))["id"] for _ in msft] == msft
    later = await sync_to_async(make_signal)(8, symbol="MSFT")
    await realtime.publish(later.to_event())
    assert (await receive(comm))["id"] == later.id
    await comm.disconnect()


async def test_ui_socket_resumes_after_since_in_order():
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    comm = communicator(f"/ws/ui/?since={rows[0].id}", headers=await ui_headers())
    assert (await comm.connect())[0]
    for row in rows[1:]:
        html = await comm.receive_from(timeout=3)
        assert 'hx-swap-oob="afterbegin:#live-signals"' in html
        assert f'data-signal-id="{row.id}"' in html
    live = await sync_to_async(make_signal)(4)
    await realtime.publish(live.to_event())
    assert f'data-signal-id="{live.id}"' in await comm.receive_from(timeout=3)
    await comm.disconnect()
