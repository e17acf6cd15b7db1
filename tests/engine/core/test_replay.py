"""The pure replay: CSV + rule → signal events."""

import json
from dataclasses import replace

import pytest

from engine.core.replay import (
    ReplayError,
    load_rule_file,
    load_rules_file,
    replay_events,
    replay_lines,
)
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
        "side": None, "contract": None,
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


# --- several rules, timeframes, combining bars (DESIGN §7.2) ------------------------------


def wavy_csv(tmp_path, n=600, *, start=T0 + 35):
    """5-s bars of two symbols, a slow wave with steps, starting mid-minute."""
    lines = ["symbol,time,open,high,low,close,volume"]
    for i in range(n):
        t = start + 5 * i
        for sym, base in (("AAPL", 100.0), ("MSFT", 300.0)):
            close = round(base + ((i // 7) % 23 - 11) * 0.03 + (i % 3) * 0.01, 2)
            lines.append(f"{sym},{t},{close},{close + 0.02:.2f},{close - 0.02:.2f},{close},{i % 9}")
    path = tmp_path / "wavy.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def minute_csv(tmp_path, path):
    """The same bars combined into UTC minutes by a straightforward grouping."""
    rows: dict[tuple[str, int], list[list[str]]] = {}
    for line in path.read_text().splitlines()[1:]:
        sym, t, *rest = line.split(",")
        rows.setdefault((sym, int(t) - int(t) % 60), []).append(rest)
    lines = ["symbol,time,open,high,low,close,volume"]
    for (sym, minute), group in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        o = group[0][0]
        h = max(float(g[1]) for g in group)
        lo = min(float(g[2]) for g in group)
        c = group[-1][3]
        v = sum(float(g[4]) for g in group)
        lines.append(f"{sym},{minute},{o},{h:.2f},{lo:.2f},{c},{v:g}")
    out = tmp_path / "minutes.csv"
    out.write_text("\n".join(lines) + "\n")
    return out


def test_several_rules_give_each_rules_signals_with_its_id_and_side(tmp_path):
    path = wavy_csv(tmp_path)
    buy = make_rule(id=5, name="Up", side="buy", cooldown_sec=30)
    sell = make_rule(
        name="Down", side="sell", cooldown_sec=0,
        conditions=[{"left": "PRICE", "op": "<", "right": "MA10@1m"}],
    )  # fmt: skip
    both = list(replay_events(path, [buy, replace(sell, rule_id=2)]))
    alone_buy = list(replay_events(path, buy, bar_seconds=5))
    alone_sell = list(replay_events(path, make_rule(
        id=2, name="Down", side="sell", cooldown_sec=0,
        conditions=[{"left": "PRICE", "op": "<", "right": "MA10@1m"}],
    )))  # fmt: skip
    assert alone_buy and alone_sell
    key = lambda e: (e["timestamp"], e["symbol"], e["rule_id"])  # noqa: E731
    assert sorted(map(key, both)) == sorted(map(key, alone_buy + alone_sell))
    assert [e["id"] for e in both] == list(range(1, len(both) + 1))
    assert {(e["rule_id"], e["rule_name"], e["side"]) for e in both} == {
        (5, "Up", "buy"), (2, "Down", "sell")
    }  # fmt: skip


def test_bar_seconds_60_on_5s_bars_equals_replaying_the_minutes(tmp_path):
    path = wavy_csv(tmp_path)
    rule = make_rule(cooldown_sec=0, conditions=[{"left": "PRICE", "op": ">", "right": "MA3"}])
    combined = list(replay_events(path, rule, bar_seconds=60))
    minutes = list(replay_events(minute_csv(tmp_path, path), rule, bar_seconds=60))
    assert combined and combined == minutes
    # The file starts at 09:30:35: the partial first minute is a bar, closing 09:31:00.
    first = list(
        replay_events(
            path,
            make_rule(cooldown_sec=0, conditions=[{"left": "PRICE", "op": ">", "right": 0}]),
            bar_seconds=60,
        )
    )
    assert first[0]["timestamp"] == "2025-12-16T09:31:00Z"  # fmt: skip


def test_a_timeframe_rule_infers_the_real_bar_length_first(tmp_path):
    path = wavy_csv(tmp_path, 300)
    rule = make_rule(cooldown_sec=0, conditions=[{"left": "PRICE", "op": ">", "right": "MA2@1m"}])
    inferred = list(replay_events(path, rule))
    assert inferred and inferred == list(replay_events(path, rule, bar_seconds=5))


def test_timeframe_on_a_longer_run_is_refused(tmp_path):
    path = wavy_csv(tmp_path, 30)
    rule = make_rule(name="Fast", conditions=[{"left": "PRICE", "op": ">", "right": "MA3@5s"}])
    with pytest.raises(ReplayError, match="rule 'Fast': MA3@5s is on a timeframe shorter"):
        list(replay_events(path, rule, bar_seconds=60))


def test_rule_lists_are_checked(tmp_path):
    path = tmp_path / "rules.json"
    rule = {**DEFAULT_RULE_DEFINITION}
    path.write_text(json.dumps([rule, {**rule, "side": "sell"}]))
    assert [(r.rule_id, r.side) for r in load_rules_file(path)] == [(1, None), (2, "sell")]
    path.write_text(json.dumps([{**rule, "id": 4}, {**rule, "id": 4}]))
    with pytest.raises(ReplayError, match="rules 1 and 2 both have id 4"):
        load_rules_file(path)
    path.write_text(json.dumps([rule] * 11))
    with pytest.raises(ReplayError, match="holds 11 rules; give 1 to 10"):
        load_rules_file(path)
    path.write_text(json.dumps([rule, {**rule, "side": "long"}]))
    with pytest.raises(ReplayError, match="rule 2 of 2 is invalid: side: unknown side 'long'"):
        load_rules_file(path)
    path.write_text(json.dumps([]))
    with pytest.raises(ReplayError, match="holds 0 rules"):
        load_rules_file(path)
