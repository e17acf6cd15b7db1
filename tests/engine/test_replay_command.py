"""`manage.py replay`: CSV + rule JSON → one signal event JSON per line; bad input → exit 2."""

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.conftest import ROOT

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC
RULE = {"id": 2, "name": "MA Momentum", "type": "custom", "logic": "AND",
        "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"},
                       {"left": "MA5", "op": ">", "right": "MA10"}],
        "cooldown_sec": 60, "trigger": "level"}  # fmt: skip


def make_files(tmp_path, *, rows=None, rule=None, header="symbol,time,open,high,low,close,volume"):
    if rows is None:
        rows = []
        for i in range(40):
            t = f"2025-12-16T09:{30 + i * 5 // 60:02d}:{i * 5 % 60:02d}"
            rows.append(f"AAPL,{t},1,1,1,{100 + i / 100:.2f},100")
            rows.append(f"MSFT,{t},1,1,1,{300 - i / 100:.2f},100")
    bars = tmp_path / "bars.csv"
    bars.write_text("\n".join([header, *rows]) + "\n")
    rule_path = tmp_path / "rule.json"
    rule_path.write_text(json.dumps(RULE if rule is None else rule))
    return str(bars), str(rule_path)


def manage(*args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scalpsite.settings"}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_replay_prints_one_event_per_line_and_exits_0(tmp_path):
    bars, rule = make_files(tmp_path)
    result = manage("replay", "--bars", bars, "--rule", rule)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["id"], e["symbol"], e["timestamp"]) for e in events] == [
        (1, "AAPL", "2025-12-16T09:30:50Z"),
        (2, "AAPL", "2025-12-16T09:31:50Z"),
        (3, "AAPL", "2025-12-16T09:32:50Z"),
    ]
    assert events[0] == {
        "event": "signal", "symbol": "AAPL", "price": 100.09, "rule_id": 2,
        "timestamp": "2025-12-16T09:30:50Z", "id": 1, "rule_name": "MA Momentum",
        "bar_seconds": 5, "values": {"PRICE": 100.09, "MA5": 100.07, "MA10": 100.045},
        "side": None, "contract": None,
    }  # fmt: skip


def test_symbol_and_bar_seconds_options(tmp_path):
    rows = [f"{T0 + 60 * i},1,1,1,{100 + i / 100:.2f},100" for i in range(12)]
    bars, rule = make_files(tmp_path, rows=rows, header="time,open,high,low,close,volume")
    result = manage("replay", "--bars", bars, "--rule", rule, "--symbol", "spy",
                    "--bar-seconds", "60")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["symbol"], e["bar_seconds"], e["timestamp"]) for e in events] == [
        ("SPY", 60, "2025-12-16T09:40:00Z"),
        ("SPY", 60, "2025-12-16T09:41:00Z"),  # cooldown 60 s ends exactly at this close
        ("SPY", 60, "2025-12-16T09:42:00Z"),
    ]


def test_symbol_option_reads_an_item_like_a_watchlist_does(tmp_path):
    """``--symbol eur.usd:cash`` is the item EURUSD:CASH; its 5-decimal prices stay exact."""
    rows = [f"EURUSD:CASH,{T0 + 5 * i},1,1,1,{1.08 + i * 0.00005:.5f},0" for i in range(12)]
    rows += [f"AAPL,{T0 + 5 * i},1,1,1,{100 + i / 100:.2f},100" for i in range(12)]
    bars, rule = make_files(tmp_path, rows=rows, header="symbol,time,open,high,low,close,volume")
    result = manage("replay", "--bars", bars, "--rule", rule, "--symbol", "eur.usd:cash")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events and {e["symbol"] for e in events} == {"EURUSD:CASH"}
    assert events[0]["price"] == 1.08045 and '"price": 1.08045,' in result.stdout  # no noise
    bad = manage("replay", "--bars", bars, "--rule", rule, "--symbol", "EUR:CASH")
    assert bad.returncode == 2
    assert "--symbol: “EUR:CASH”: an FX item names its pair" in bad.stderr


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("missing column", "bars.csv, line 1: missing column volume"),
        ("bad number", "bars.csv, line 3: column close: 'abc' is not a number"),
        ("bad time", "bars.csv, line 2: unreadable time 'soon'"),
        ("unsorted", "bars.csv, line 3: bars out of order"),
        ("bad rule", "rule.json: invalid rule: conditions[0].op: unknown operator '=>'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, kind, words):
    header = "time,open,high,low,close,volume"
    rows = [f"{T0},1,1,1,1,1", f"{T0 + 5},1,1,1,1,1"]
    rule = None
    if kind == "missing column":
        header = "time,open,high,low,close"
    elif kind == "bad number":
        rows[1] = f"{T0 + 5},1,1,1,abc,1"
    elif kind == "bad time":
        rows[0] = "soon,1,1,1,1,1"
    elif kind == "unsorted":
        rows.reverse()
    else:
        rule = {**RULE, "conditions": [{"left": "PRICE", "op": "=>", "right": "MA5"}]}
    bars, rule_path = make_files(tmp_path, rows=rows, rule=rule, header=header)
    result = manage("replay", "--bars", bars, "--rule", rule_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0]
    assert "Traceback" not in result.stderr


def test_call_command_writes_events_and_exits_2_on_error(tmp_path):
    bars, rule = make_files(tmp_path)
    out = io.StringIO()
    call_command("replay", bars=bars, rule=rule, stdout=out)
    assert len(out.getvalue().splitlines()) == 3
    err = io.StringIO()
    with pytest.raises(SystemExit) as info:
        call_command("replay", bars=str(tmp_path / "none.csv"), rule=rule, stdout=out, stderr=err)
    assert info.value.code == 2
    assert "none.csv: cannot open the file" in err.getvalue()


def test_a_list_of_rules_on_5s_bars_combined_into_minutes(tmp_path):
    """`--rule` takes a list; `--bar-seconds 60` on 5-second bars builds UTC minutes (it
    used to exit 2); each signal names its rule and side."""
    buy = {**RULE, "id": 7, "name": "Up", "side": "buy", "cooldown_sec": 0,
           "conditions": [{"left": "PRICE", "op": ">", "right": 0}]}  # fmt: skip
    sell = {**RULE, "id": 8, "name": "Down", "side": "sell", "cooldown_sec": 0,
            "conditions": [{"left": "PRICE", "op": ">=", "right": "MA2@1m"}]}  # fmt: skip
    bars, rule = make_files(tmp_path, rule=[buy, sell])
    result = manage("replay", "--bars", bars, "--rule", rule, "--bar-seconds", "60")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    # 40 five-second bars from 09:30:00: minutes 09:30 to 09:32 and a partial 09:33 (20 s).
    up = [(e["symbol"], e["timestamp"]) for e in events if e["rule_id"] == 7]
    assert up == [
        (sym, f"2025-12-16T09:3{m}:00Z") for m in (1, 2, 3, 4) for sym in ("AAPL", "MSFT")
    ]
    down = [(e["symbol"], e["timestamp"], e["side"]) for e in events if e["rule_id"] == 8]
    # MA2@1m exists from the second minute's close (09:32:00) on; AAPL rises, MSFT falls.
    assert down == [("AAPL", f"2025-12-16T09:3{m}:00Z", "sell") for m in (2, 3, 4)]
    assert {e["bar_seconds"] for e in events} == {60}


def test_a_bad_rule_list_exits_2_with_one_line(tmp_path):
    bars, rule = make_files(tmp_path, rule=[RULE, RULE])
    result = manage("replay", "--bars", bars, "--rule", rule)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"replay: {rule}: rules 1 and 2 both have id 2; give each rule its own id"
    ]
