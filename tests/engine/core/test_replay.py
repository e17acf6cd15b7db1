"""The pure replay: CSV + rule → signal events."""

import json

import pytest

from engine.core.replay import ReplayError, load_rule_file, replay_events, replay_lines
from engine.core.rules import DEFAULT_RULE_DEFINITION, validate_definition

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC


def make_rule(**overrides):
    return validate_definition({**DEFAULT_RULE_DEFINITION, **overrides})


def make_csv(tmp_path, rows, *, symbol_column=False, name="aapl.csv"):
    header = "symbol,time,open,high,low,close,volume" if symbol_column else (
        "time,open,high,low,close,volume")  # fmt: skip
    lines = [header]
    for row in rows:
        if symbol_column:
            sym, t, close = row
            lines.append(f"{sym},{t},{close},{close},{close},{close},100")
        else:
            t, close = row
            lines.append(f"{t},{close},{close},{close},{close},100")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


RISING = [round(100 + 0.01 * i, 2) for i in range(40)]


def test_replay_emits_design_events_in_bar_order(tmp_path):
    path = make_csv(tmp_path, [(T0 + 5 * i, c) for i, c in enumerate(RISING)])
    events = list(replay_events(path, make_rule(id=2, name="MA Momentum")))
    # Fires on bar 9 (first with MA10), then every 60 s of bar time: bars 21 and 33.
    assert [e["timestamp"] for e in events] == [
        "2025-12-16T09:30:50Z", "2025-12-16T09:31:50Z", "2025-12-16T09:32:50Z"
    ]  # fmt: skip
    assert [e["id"] for e in events] == [1, 2, 3]
    first = events[0]
    assert first == {
        "event": "signal", "symbol": "AAPL", "price": 100.09, "rule_id": 2,
        "timestamp": "2025-12-16T09:30:50Z", "id": 1, "rule_name": "MA Momentum",
        "bar_seconds": 5, "values": {"PRICE": 100.09, "MA5": 100.07, "MA10": 100.045},
    }  # fmt: skip


def test_replay_without_metadata_has_null_rule_id_and_empty_name(tmp_path):
    path = make_csv(tmp_path, [(T0 + 5 * i, c) for i, c in enumerate(RISING)])
    event = next(replay_events(path, make_rule()))
    assert event["rule_id"] is None and event["rule_name"] == ""


def test_multi_symbol_files_keep_separate_state(tmp_path):
    rows = []
    for i, close in enumerate(RISING[:12]):
        rows.append(("AAPL", T0 + 5 * i, close))
        rows.append(("MSFT", T0 + 5 * i, round(300 - 0.01 * i, 2)))  # falling: never fires
        if i >= 3:
            rows.append(("TSLA", T0 + 5 * i, close))  # starts later: fires 3 bars later
    path = make_csv(tmp_path, rows, symbol_column=True)
    events = list(replay_events(path, make_rule(cooldown_sec=0)))
    assert [(e["symbol"], e["timestamp"][-3:-1]) for e in events] == [
        ("AAPL", "50"), ("AAPL", "55"), ("AAPL", "00")
    ]  # fmt: skip
    rows += [("TSLA", T0 + 5 * i, RISING[i]) for i in range(12, 16)]
    path = make_csv(tmp_path, rows, symbol_column=True)
    tsla = [e for e in replay_events(path, make_rule(cooldown_sec=0)) if e["symbol"] == "TSLA"]
    assert tsla[0]["timestamp"] == "2025-12-16T09:31:05Z"  # bar 12 = TSLA's 10th bar
    assert [e["id"] for e in replay_events(path, make_rule(cooldown_sec=0))] == list(range(1, 8))


def test_symbol_filter_keeps_one_symbol(tmp_path):
    rows = [(sym, T0 + 5 * i, c) for i, c in enumerate(RISING) for sym in ("AAPL", "MSFT")]
    path = make_csv(tmp_path, rows, symbol_column=True)
    events = list(replay_events(path, make_rule(), symbol="msft"))
    assert {e["symbol"] for e in events} == {"MSFT"}
    assert [e["id"] for e in events] == [1, 2, 3]


def test_bar_seconds_option_sets_the_close_time(tmp_path):
    path = make_csv(tmp_path, [(T0 + 60 * i, c) for i, c in enumerate(RISING[:10])])
    event = next(replay_events(path, make_rule(), bar_seconds=60))
    assert event["bar_seconds"] == 60 and event["timestamp"] == "2025-12-16T09:40:00Z"
    assert next(replay_events(path, make_rule()))["bar_seconds"] == 60


def test_replay_lines_are_json(tmp_path):
    path = make_csv(tmp_path, [(T0 + 5 * i, c) for i, c in enumerate(RISING)])
    lines = list(replay_lines(path, make_rule()))
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
    assert all("\n" not in line for line in lines)


def test_load_rule_file_errors_name_the_file(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text('{"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", '
                    '"right": "MA500"}], "cooldown_sec": 60}')  # fmt: skip
    with pytest.raises(ReplayError) as info:
        load_rule_file(path)
    assert str(info.value) == (
        f"{path}: invalid rule: conditions[0].right: unknown operand 'MA500'; "
        "MA<n> takes a period n from 2 to 200"
    )
    path.write_text("{\n  'logic': 1}")
    with pytest.raises(ReplayError, match=r"rule.json, line 2: invalid JSON"):
        load_rule_file(path)
    with pytest.raises(ReplayError, match="cannot read"):
        load_rule_file(tmp_path / "missing.json")


def test_bad_bars_become_a_replay_error(tmp_path):
    path = make_csv(tmp_path, [(T0 + 5, 1), (T0, 1)])
    with pytest.raises(ReplayError) as info:
        list(replay_events(path, make_rule()))
    assert info.value.line == 3 and "out of order" in str(info.value)


def test_signals_beyond_the_memory_limit_go_through_a_temp_file(tmp_path, monkeypatch):
    path = make_csv(tmp_path, [(T0 + 5 * i, c) for i, c in enumerate(RISING)])
    rule = make_rule(cooldown_sec=0, id=4)
    expected = list(replay_events(path, rule))
    monkeypatch.setattr("engine.core.replay.MAX_HELD_SIGNALS", 2)
    assert list(replay_events(path, rule)) == expected
    assert [e["id"] for e in expected] == list(range(1, 32))
    assert list(replay_events(path, rule, bar_seconds=5)) == expected


def test_non_positive_bar_seconds_is_a_replay_error(tmp_path):
    path = make_csv(tmp_path, [(T0, 1)])
    with pytest.raises(ReplayError, match="must be positive"):
        list(replay_events(path, make_rule(), bar_seconds=0))
