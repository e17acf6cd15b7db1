"""`manage.py backtest`: CSV + rule JSON → signals with outcomes, then stats (jsonl) or a
stats table; bad input → exit 2 with one line."""

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from engine.core.backtest import backtest_events
from engine.core.replay import load_rules_file
from tests.conftest import ROOT

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC
RULES = [
    {"id": 4, "name": "Up", "logic": "AND", "cooldown_sec": 30, "trigger": "level",
     "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}]},
    {"id": 7, "name": "Down", "side": "sell", "logic": "AND", "cooldown_sec": 30,
     "trigger": "level", "conditions": [{"left": "PRICE", "op": "<", "right": "MA5"}]},
]  # fmt: skip


def make_files(tmp_path, *, rows=None, rule=None):
    if rows is None:
        rows = []
        for i in range(400):
            close = 100 + (i % 37) / 100 - (i % 11) / 50
            rows.append(f"{T0 + 5 * i},{close:.2f},{close + 0.02:.2f},{close - 0.01:.2f},"
                        f"{close:.2f},100")  # fmt: skip
    bars = tmp_path / "aapl_5s.csv"
    bars.write_text("\n".join(["time,open,high,low,close,volume", *rows]) + "\n")
    rule_path = tmp_path / "rules.json"
    rule_path.write_text(json.dumps(RULES if rule is None else rule))
    return str(bars), str(rule_path)


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("backtest", *args, stdout=out, stderr=err)
    except SystemExit as exit:
        return exit.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_jsonl_prints_signals_with_outcomes_then_one_stats_line_per_rule(tmp_path):
    bars, rule = make_files(tmp_path)
    code, out, err = run("--bars", bars, "--rule", rule, "--horizons", "30s,2m")
    assert (code, err) == (0, "")
    events = [json.loads(line) for line in out.splitlines()]
    signals = [e for e in events if e["event"] == "signal"]
    assert len(signals) > 20 and {e["rule_id"] for e in signals} == {4, 7}
    assert all(set(e["outcomes"]) == {"30s", "2m"} for e in signals)
    assert signals[-1]["outcomes"]["2m"] is None  # the data ends before T+2m
    assert set(signals[0]["outcomes"]["30s"]) == {"return_pct", "mfe_pct", "mae_pct"}
    stats = events[len(signals) :]
    assert [(s["event"], s["rule_id"], s["rule_name"]) for s in stats] == [
        ("stats", 4, "Up"), ("stats", 7, "Down")]  # fmt: skip
    assert sum(s["signals"] for s in stats) == len(signals)
    # the same stream as the pure function
    assert events == list(backtest_events(bars, load_rules_file(rule), horizons=(30, 120)))


def test_table_shows_each_rule_and_horizon_and_a_summary(tmp_path):
    bars, rule = make_files(tmp_path)
    code, out, err = run("--bars", bars, "--rule", rule, "--format", "table")
    assert (code, err) == (0, "")
    lines = out.rstrip("\n").splitlines()
    assert lines[0].split() == ["rule", "horizon", "count", "hit", "rate", "%", "mean", "ret",
                                "%", "median", "ret", "%", "mean", "MFE", "%", "mean", "MAE",
                                "%"]  # fmt: skip
    body = lines[2:8]
    assert [row.split()[0] for row in body if not row.startswith(" ")] == ["4", "7"]
    assert [row.split()[-7] for row in body] == ["1m", "5m", "15m"] * 2
    assert len({len(row) for row in lines[:2]}) == 1  # aligned
    assert lines[-1].startswith("400 bars of 5 s, ")
    assert "2025-12-16T09:30:00Z to 2025-12-16T10:03:20Z" in lines[-1]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("horizons", "backtest: --horizons: “²m” is not a horizon"),
        ("too many", "backtest: --horizons: give at most 6 horizons, not 7"),
        ("empty", "aapl_5s.csv: no bars; nothing to backtest"),
        ("unsorted", "aapl_5s.csv, line 3: bars out of order"),
        ("nul", "aapl_5s.csv, line 3: column high: '1\\x00' is not a number"),
        ("missing", "none.csv: cannot open the file"),
        ("rule", "rules.json: rule 1 of 1 is invalid"),
        ("symbol", "--symbol: "),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, kind, words):
    rows = [f"{T0},1,1,1,1,1", f"{T0 + 5},1,1,1,1,1"]
    rule = None
    extra = []
    if kind == "empty":
        rows = []
    elif kind == "unsorted":
        rows.reverse()
    elif kind == "nul":
        rows[1] = f"{T0 + 5},1,1\x00,1,1,1"
    elif kind == "rule":
        rule = [{**RULES[0], "conditions": []}]
    bars, rule_path = make_files(tmp_path, rows=rows, rule=rule)
    if kind == "horizons":
        extra = ["--horizons", "1m,²m"]
    elif kind == "too many":
        extra = ["--horizons", "1s,2s,3s,4s,5s,6s,7s"]
    elif kind == "missing":
        bars = str(tmp_path / "none.csv")
    elif kind == "symbol":
        extra = ["--symbol", "a\x00b"]
    code, out, err = run("--bars", bars, "--rule", rule_path, *extra)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert words in err


def test_the_real_command_exits_2_without_a_traceback(tmp_path):
    bars, rule = make_files(tmp_path, rows=[f"{T0},1,1,1,abc,1"])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scalpsite.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--bars", bars, "--rule", rule,
         "--format", "table"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"backtest: {bars}, line 2: column close: 'abc' is not a number"
    ]
