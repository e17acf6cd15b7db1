"""Outcome events (DESIGN §7.3) on the sockets: live to programs whose symbol filter takes
them and to pages (the live row's cell), after each re-sent signal on resume, never before
their signal, never twice."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from engine.core.outcomes import Outcome as CoreOutcome
from signals import events, realtime
from signals.services import outcomes_record
from tests.signals.helpers import communicator, feed_token, make_signal
from tests.signals.test_consumers import ui_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_broadcast_state():
    realtime.reset_for_tests()
    yield
    realtime.reset_for_tests()


async def receive(comm) -> dict:
    return json.loads(await comm.receive_from(timeout=3))


async def connect_feed(path="/ws/signals/"):
    comm = communicator(path, token=await sync_to_async(feed_token)())
    assert (await comm.connect())[0]
    return comm


def store_outcome(signal, horizon: int, ret: float | None, mfe=None, mae=None) -> dict:
    """Store a final outcome as the worker does and return its live event."""
    (row,) = outcomes_record([(signal.id, CoreOutcome(horizon, ret, mfe, mae))])
    return row.to_event()


async def test_a_program_gets_outcomes_live_filtered_by_symbol():
    aapl = await sync_to_async(make_signal)(1, symbol="AAPL")
    msft = await sync_to_async(make_signal)(2, symbol="MSFT")
    everything = await connect_feed()
    only_msft = await connect_feed("/ws/signals/?symbols=MSFT")
    event = await sync_to_async(store_outcome)(aapl, 60, 0.125, 0.25, -0.05)
    await realtime.publish(event)
    got = await receive(everything)
    assert got == {
        "event": "outcome", "id": aapl.id, "horizon": "1m", "return_pct": 0.125,
        "mfe_pct": 0.25, "mae_pct": -0.05, "symbol": "AAPL", "rule_id": 1,
        "timestamp": "2025-12-16T14:30:05Z",
    }  # fmt: skip
    assert await only_msft.receive_nothing(timeout=0.2)
    closed = await sync_to_async(store_outcome)(msft, 300, None)  # a closed market: nulls
    await realtime.publish(closed)
    for comm in (everything, only_msft):
        got = await receive(comm)
        assert (got["id"], got["horizon"], got["return_pct"]) == (msft.id, "5m", None)
    await everything.disconnect()
    await only_msft.disconnect()


async def test_on_resume_each_signal_is_followed_by_its_stored_outcomes_once():
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 4)]
    await sync_to_async(store_outcome)(rows[1], 300, -0.5, 0.1, -0.6)
    await sync_to_async(store_outcome)(rows[1], 60, 0.2, 0.3, -0.1)
    await sync_to_async(store_outcome)(rows[0], 60, 0.1, 0.1, 0.0)  # before since: not re-sent
    comm = await connect_feed(f"/ws/signals/?since={rows[0].id}")
    frames = [await receive(comm) for _ in range(4)]
    assert [(f["event"], f["id"], f.get("horizon")) for f in frames] == [
        ("signal", rows[1].id, None),
        ("outcome", rows[1].id, "1m"),
        ("outcome", rows[1].id, "5m"),
        ("signal", rows[2].id, None),
    ]
    assert frames[2]["return_pct"] == -0.5 and frames[2]["timestamp"] == frames[0]["timestamp"]
    # A live outcome of a signal already sent goes out as it comes; a re-delivered wake-up
    # of a stored signal sends nothing twice.
    live = await sync_to_async(store_outcome)(rows[2], 60, 0.3, 0.4, 0.0)
    await realtime.publish(live)
    assert await receive(comm) == live
    await realtime.publish(rows[2].to_event())
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_an_outcome_never_goes_out_before_its_signal():
    """The signal's wake-up was lost: its live outcome waits until the catch-up has sent the
    signal, and the catch-up that read it from the database doesn't send it twice."""
    first = await sync_to_async(make_signal)(1)
    comm = await connect_feed()  # position: signal 1
    lost = await sync_to_async(make_signal)(2)  # its wake-up never arrives
    early = await sync_to_async(store_outcome)(lost, 60, 0.2, 0.2, 0.0)
    await realtime.publish(early)
    assert await comm.receive_nothing(timeout=0.2)
    await realtime.bridge_connected()  # wakes the socket: signal 2, then its outcome
    frames = [await receive(comm) for _ in range(2)]
    assert [(f["event"], f["id"]) for f in frames] == [("signal", lost.id), ("outcome", lost.id)]
    assert await comm.receive_nothing(timeout=0.3)
    assert first.id < lost.id
    await comm.disconnect()


async def test_a_live_outcome_a_catch_up_already_sent_is_not_sent_twice():
    """The outcome is stored, a resuming program reads it with its signal, then its live
    event (sent by the worker just after the commit) arrives."""
    row = await sync_to_async(make_signal)(1)
    event = await sync_to_async(store_outcome)(row, 60, 0.2, 0.2, 0.0)
    comm = await connect_feed("/ws/signals/?since=0")
    frames = [await receive(comm) for _ in range(2)]
    assert [f["event"] for f in frames] == ["signal", "outcome"] and frames[1] == event
    await realtime.publish(event)
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_the_page_row_gets_an_outcome_cell_per_horizon_filled_live():
    await realtime.bridge_connected()
    comm = communicator("/ws/ui/", headers=await ui_headers())
    assert (await comm.connect())[0]
    row = await sync_to_async(make_signal)(1)
    await realtime.publish(row.to_event())
    html = await comm.receive_from(timeout=3)
    for label in ("1m", "5m", "15m"):
        assert f'id="outcome-{row.id}-{label}"' in html
    assert html.count('data-final="0"') == 3 and "…" in html
    event = await sync_to_async(store_outcome)(row, 60, -0.25, 0.05, -0.4)
    await realtime.publish(event)
    html = await comm.receive_from(timeout=3)
    assert html.startswith(f'<span id="outcome-{row.id}-1m" hx-swap-oob="true"')
    assert "−0.25%" in html and "text-rose-300" in html and 'data-final="1"' in html
    assert "MFE +0.050% · MAE −0.400%" in html
    await comm.disconnect()


async def test_a_resuming_page_gets_rows_with_their_stored_outcomes():
    rows = [await sync_to_async(make_signal)(n) for n in range(1, 3)]
    await sync_to_async(store_outcome)(rows[1], 60, 0.5, 0.6, -0.1)
    comm = communicator(f"/ws/ui/?since={rows[0].id}", headers=await ui_headers())
    assert (await comm.connect())[0]
    html = await comm.receive_from(timeout=3)
    assert f'data-signal-id="{rows[1].id}"' in html
    assert "+0.50%" in html and html.count('data-final="1"') == 1
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_a_malformed_outcome_event_is_dropped_with_a_log_line(caplog):
    comm = await connect_feed()
    await realtime.publish({"event": events.OUTCOME, "horizon": "1m"})
    assert await comm.receive_nothing(timeout=0.2)
    assert "without id and horizon" in caplog.text
    await comm.disconnect()
