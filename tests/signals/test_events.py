"""The one module that builds event dicts (DESIGN §3, docs/delivery.md)."""

import json

import pytest

from engine.core.machine import Signal
from signals import events

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC


def test_signal_event_has_the_design_keys():
    signal = Signal("AAPL", T0 + 60, 189.2, 2, {"MA5": 189.1})
    event = events.signal_from(signal, id=1042, rule_name="MA Momentum", bar_seconds=5)
    assert event == {
        "event": "signal", "symbol": "AAPL", "price": 189.2, "rule_id": 2,
        "timestamp": "2025-12-16T09:31:00Z", "id": 1042, "rule_name": "MA Momentum",
        "bar_seconds": 5, "values": {"MA5": 189.1}, "side": None, "contract": None,
    }  # fmt: skip
    assert list(event)[:5] == ["event", "symbol", "price", "rule_id", "timestamp"]
    assert list(event)[-2:] == ["side", "contract"], "additive extras, after the seed's keys"


def test_signal_and_bar_events_carry_the_items_contract():
    contract = {"local_symbol": "ESZ6", "sec_type": "FUT", "exchange": "CME",
                "currency": "USD", "min_tick": 0.25}  # fmt: skip
    event = events.signal(
        id=3, symbol="ES:FUT:CME", price=6000.25, rule_id=1, rule_name="r", close_time=T0,
        bar_seconds=5, values={}, contract=contract,
    )  # fmt: skip
    assert event["contract"] == contract and event["symbol"] == "ES:FUT:CME"
    assert json.loads(events.text(event))["contract"]["min_tick"] == 0.25
    assert events.bar(**_bar_args(), contract=contract)["contract"] == contract
    assert events.bar(**_bar_args(), contract={})["contract"] is None


@pytest.mark.parametrize("side", ["buy", "sell", None])
def test_signal_event_carries_the_rule_side_and_the_csv_row_ends_with_it(side):
    fired = Signal("AAPL", T0 + 60, 189.2, 2, {"MA5": 189.1}, side)
    event = events.signal_from(fired, id=7, rule_name="Dip", bar_seconds=5)
    assert event["side"] == side
    assert json.loads(events.text(event))["side"] == side
    assert events.CSV_HEADER[-1] == "side"
    assert events.CSV_HEADER[:8] == (
        "id", "time_utc", "symbol", "price", "rule_id", "rule_name", "bar_seconds", "values",
    )  # fmt: skip
    row = events.csv_fields(event)
    assert len(row) == len(events.CSV_HEADER)
    assert row == (7, "2025-12-16T09:31:00Z", "AAPL", 189.2, 2, "Dip", 5, '{"MA5":189.1}',
                   side or "")  # fmt: skip


def test_a_replay_shift_moves_only_the_timestamp():
    signal = Signal("AAPL", T0, 189.2, 2, {})
    shifted = events.signal_from(signal, id=1, rule_name="r", bar_seconds=60, shift=60)
    assert shifted["timestamp"] == "2025-12-16T09:31:00Z"
    assert shifted == {**events.signal_from(signal, id=1, rule_name="r", bar_seconds=60),
                       "timestamp": "2025-12-16T09:31:00Z"}  # fmt: skip


def test_live_status_has_state_message_time_and_the_api_adds_the_details():
    live = events.status(state="running", message="Scanning.", time=T0)
    assert live == {"event": "status", "state": "running", "message": "Scanning.",
                    "time": "2025-12-16T09:30:00Z"}  # fmt: skip
    full = events.status(
        state="idle", message="", time=T0, desired="stopped", heartbeat=None,
        last_bar_time=None, rule_id=None, watchlist_id=3,
    )  # fmt: skip
    assert list(full)[:4] == list(live)
    assert full["desired"] == "stopped" and full["watchlist_id"] == 3 and "heartbeat" in full
    assert full["rule_ids"] == [] and list(full)[-2:] == ["rule_ids", "symbols"]
    assert full["symbols"] == {}
    several = events.status(
        state="running", message="", time=T0, desired="running", rule_id=4, rule_ids=[4, 9]
    )
    assert (several["rule_id"], several["rule_ids"]) == (4, [4, 9])


def test_bar_event():
    event = events.bar(
        symbol="MSFT", start=T0, open=1.0, high=2.0, low=0.5, close=1.5, volume=10.0,
        values={"MA5": 1.2}, state="COOLDOWN", cooldown_until=T0 + 65,
    )  # fmt: skip
    assert event["event"] == "bar" and event["time"] == "2025-12-16T09:30:00Z"
    assert event["cooldown_until"] == "2025-12-16T09:31:05Z"
    assert event["rules"] == []
    assert events.bar(**{**_bar_args(), "cooldown_until": None})["cooldown_until"] is None


def test_bar_event_lists_every_rule_state():
    rules = [
        events.rule_state(rule_id=1, state="COOLDOWN", cooldown_until=T0 + 65),
        events.rule_state(rule_id=8, state="WAIT", cooldown_until=None),
    ]
    event = events.bar(**{**_bar_args(), "state": "COOLDOWN", "cooldown_until": T0 + 65,
                          "rules": rules})  # fmt: skip
    assert event["rules"] == [
        {"rule_id": 1, "state": "COOLDOWN", "cooldown_until": "2025-12-16T09:31:05Z"},
        {"rule_id": 8, "state": "WAIT", "cooldown_until": None},
    ]
    assert list(event)[-2:] == ["rules", "contract"]
    assert json.loads(events.text(event))["rules"] == event["rules"]


def _bar_args() -> dict:
    return {"symbol": "X", "start": T0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
            "volume": 0.0, "values": {}, "state": "WAIT", "cooldown_until": None}  # fmt: skip


def test_program_frames_and_text():
    assert events.pong() == {"event": "pong"}
    assert events.error("bad") == {"event": "error", "message": "bad"}
    assert events.subscribed(frozenset({"MSFT", "AAPL"}), bars=True) == {
        "event": "subscribed", "symbols": ["AAPL", "MSFT"], "bars": True}  # fmt: skip
    assert events.subscribed(None, bars=False)["symbols"] is None
    text = events.text(events.error("é"))
    assert " " not in text.replace("é", "") and json.loads(text) == events.error("é")
