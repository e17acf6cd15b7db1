"""The pure backtest: replay's signals, each with its outcomes (the §7.3 definition), then
per-rule stats."""

import random

import pytest

from engine.core.backtest import Backtest, backtest_events, backtest_lines
from engine.core.bars import BucketAggregator, iter_csv_bars
from engine.core.outcomes import horizon_label, outcome_of
from engine.core.replay import ReplayError, replay_events
from engine.core.rules import validate_definition
from engine.core.stats import RuleStats
from engine.core.text import parse_text

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC

RULES = [
    validate_definition(
        {"id": 1, "name": "up", "cooldown_sec": 30, "trigger": "edge",
         **parse_text("PRICE > MA5 AND MA5 > MA10")}
    ),
    validate_definition(
        {"id": 2, "name": "down", "side": "sell", "cooldown_sec": 60,
         **parse_text("PRICE < MA5")}
    ),
    validate_definition(
        {"id": 3, "name": "minute", "side": "buy", "cooldown_sec": 120,
         **parse_text("PRICE > MA3@1m")}
    ),
]  # fmt: skip
HORIZONS = (60, 300)


def random_csv(tmp_path, n, *, seed, seconds=5, symbols=("AAPL",), gap_at=None):
    """A random walk per symbol, interleaved, whole cents; an optional gap of 10 minutes."""
    rng = random.Random(seed)
    lines = ["symbol,time,open,high,low,close,volume"]
    price = {sym: 100.0 + k for k, sym in enumerate(symbols)}
    t = T0 + 35
    for i in range(n):
        if gap_at is not None and i == gap_at:
            t += 600
        for sym in symbols:
            o = price[sym]
            c = round(max(1.0, o + rng.choice((-3, -2, -1, 0, 1, 2, 3)) * 0.01), 2)
            h = round(max(o, c) + rng.randint(0, 2) * 0.01, 2)
            lo = round(min(o, c) - rng.randint(0, 2) * 0.01, 2)
            lines.append(f"{sym},{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{rng.randint(1, 9) * 100}")
            price[sym] = c
        t += seconds
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def expected(path, rules, *, bar_seconds=None, horizons=HORIZONS):
    """Replay's events plus outcome_of over the bars the run takes (combined as replay does)."""
    signals = list(replay_events(path, rules, bar_seconds=bar_seconds))
    length = signals[0]["bar_seconds"] if signals else bar_seconds
    bars = list(iter_csv_bars(path, bar_seconds=None))
    if length and bars and bars[0].seconds < length:
        agg = BucketAggregator(length)
        bars = [b for bar in bars for b in agg.feed(bar)] + agg.flush()
    per_symbol = {}
    for bar in bars:
        per_symbol.setdefault(bar.symbol, []).append(
            (bar.time + length, bar.high, bar.low, bar.close)
        )
    last_close = {sym: rows[-1][0] for sym, rows in per_symbol.items()}
    out = []
    for event in signals:
        close = T0_of(event["timestamp"])
        outcomes = {}
        for h in horizons:
            if last_close[event["symbol"]] < close + h:
                outcomes[horizon_label(h)] = None  # the data ends before T+H
            else:
                outcome = outcome_of(
                    event["price"], event["side"], close, h, per_symbol[event["symbol"]]
                )
                outcomes[horizon_label(h)] = outcome.to_json()
        out.append({**event, "outcomes": outcomes})
    return out


def T0_of(text):
    from engine.core.bars import parse_time

    return parse_time(text)


def stats_of(events, rules, horizons=HORIZONS):
    from engine.core.outcomes import Outcome

    stats = {rule.rule_id: RuleStats(tuple(horizons)) for rule in rules}
    for event in events:
        found = []
        for h in horizons:
            value = event["outcomes"][horizon_label(h)]
            found.append(None if value is None else Outcome(h, **value))
        stats[event["rule_id"]].add_signal(found)
    return [
        {"event": "stats", "rule_id": r.rule_id, "rule_name": r.name, **stats[r.rule_id].to_json()}
        for r in rules
    ]


@pytest.mark.parametrize(
    ("seed", "bar_seconds", "symbols", "rules"),
    [
        (1, None, ("AAPL",), 3),  # @1m: the bar length is inferred first
        (2, None, ("AAPL", "MSFT"), 3),
        (3, 60, ("AAPL",), 3),  # 5 s bars combined into minutes
        (4, None, ("AAPL", "MSFT"), 2),  # no timeframe: stamped 0, shifted at the end
    ],
)
def test_backtest_is_replay_plus_the_outcome_definition(
    tmp_path, seed, bar_seconds, symbols, rules
):
    rules = RULES[:rules]
    path = random_csv(tmp_path, 1500, seed=seed, symbols=symbols, gap_at=700)
    got = list(backtest_events(path, rules, bar_seconds=bar_seconds, horizons=HORIZONS))
    signals = [e for e in got if e["event"] == "signal"]
    want = expected(path, rules, bar_seconds=bar_seconds)
    assert len(signals) > 30
    assert {e["rule_id"] for e in signals} == {r.rule_id for r in rules}
    assert signals == want
    assert [e["id"] for e in signals] == list(range(1, len(signals) + 1))
    assert got[len(signals) :] == stats_of(want, rules)


@pytest.mark.parametrize(
    ("seed", "bar_seconds", "rules", "block_chars", "quote_at"),
    [
        (11, None, 2, 3000, None),  # small blocks: signals wait across block ends
        (12, 5, 3, 3000, None),  # a known length: close = start + 5 in the blocks
        (13, None, 3, 1 << 18, None),  # both symbols in one block: read row by row
        (14, None, 2, 3000, 1700),  # a quoted field: the rest of the file row by row
        (15, 5, 2, 500, None),  # tiny blocks (a few rows each)
    ],
)
def test_the_bulk_path_over_column_blocks_is_replay_plus_the_definition(
    tmp_path, monkeypatch, seed, bar_seconds, rules, block_chars, quote_at
):
    """A file sorted by symbol: the fast reader gives column blocks, which the tracker
    takes whole (a signal completes as it fires when its horizons end inside the block);
    the same signals, outcomes, order and stats as the definition."""
    rules = RULES[:rules]
    interleaved = random_csv(tmp_path, 1200, seed=seed, symbols=("AAPL", "MSFT"), gap_at=500)
    header, *rows = interleaved.read_text().splitlines()
    rows.sort(key=lambda line: line.split(",")[0])  # stable: each symbol keeps its order
    if quote_at is not None:
        sym, t, *rest = rows[quote_at].split(",")
        rows[quote_at] = ",".join([f'"{sym}"', t, *rest])
    path = tmp_path / "sorted.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    want = expected(path, rules, bar_seconds=bar_seconds)
    monkeypatch.setattr("engine.core.bars.FAST_BLOCK_CHARS", block_chars)
    got = list(backtest_events(path, rules, bar_seconds=bar_seconds, horizons=HORIZONS))
    signals = [e for e in got if e["event"] == "signal"]
    assert len(signals) > 30 and {e["symbol"] for e in signals} == {"AAPL", "MSFT"}
    assert signals == want
    assert [e["id"] for e in signals] == list(range(1, len(signals) + 1))
    assert got[len(signals) :] == stats_of(want, rules)


def test_outcomes_are_null_where_the_data_ends_and_empty_across_a_long_gap(tmp_path):
    path = random_csv(tmp_path, 400, seed=5, gap_at=200)
    rule = validate_definition({"cooldown_sec": 0, "trigger": "level", **parse_text("PRICE > 1")})
    events = list(backtest_events(path, [rule], horizons=(60, 300)))
    signals = [e for e in events if e["event"] == "signal"]
    assert len(signals) == 400  # every bar fires
    assert signals[-1]["outcomes"] == {"1m": None, "5m": None}
    # The bar before the 10-minute gap: the next bar closes 605 s later, outside both windows.
    before_gap = signals[199]
    assert before_gap["outcomes"] == {
        "1m": {"return_pct": None, "mfe_pct": None, "mae_pct": None},
        "5m": {"return_pct": None, "mfe_pct": None, "mae_pct": None},
    }
    stats = events[-1]
    assert stats["event"] == "stats" and stats["signals"] == 400
    # final with values: all but the last 12 (1m) / 60 (5m) bars and the empty window
    assert stats["horizons"]["1m"]["count"] == 400 - 12 - 1
    assert stats["horizons"]["5m"]["count"] == 400 - 60 - 1


def test_the_class_hands_out_complete_signals_in_id_order():
    rule = validate_definition(
        {"cooldown_sec": 0, "trigger": "level", "side": "sell", **parse_text("PRICE > 1")}
    )
    run = Backtest([rule], bar_seconds=5, horizons=(10,), by_symbol=True)
    assert run.feed("A", T0, 10, 10, 10, 10, 1) == []  # A's signal 1 open
    assert run.feed("B", T0, 20, 20, 20, 20, 1) == []  # B's signal 2 open
    out = run.feed("B", T0 + 5, 20, 21, 19, 19, 1)  # B: 2 still open (needs T+10)
    assert out == []
    out = run.feed("B", T0 + 10, 19, 19, 18, 18, 1)  # 2 final, but 1 is not: held back
    assert out == []
    out = run.feed("A", T0 + 5, 10, 11, 9, 10.5, 1)
    assert out == []
    out = run.feed("A", T0 + 10, 10, 10, 10, 10, 1)
    assert [e["id"] for e in out] == [1, 2]
    # sell: favourable is down
    assert out[0]["outcomes"]["10s"] == {"return_pct": 0.0, "mfe_pct": 10.0, "mae_pct": -10.0}
    assert out[1]["outcomes"]["10s"] == {"return_pct": 10.0, "mfe_pct": 10.0, "mae_pct": -5.0}
    assert run.bars == 6
    rest = run.finish()
    assert [e["id"] for e in rest] == list(range(3, 7))
    assert all(e["outcomes"]["10s"] is None for e in rest[-2:])
    (stats,) = run.stats()
    assert stats["signals"] == 6
    assert stats["symbols"]["A"]["signals"] == 3 and stats["symbols"]["B"]["signals"] == 3


def test_spilled_signals_and_lines_match(tmp_path, monkeypatch):
    path = random_csv(tmp_path, 300, seed=9)
    rule = validate_definition({"cooldown_sec": 0, "trigger": "level", **parse_text("PRICE > 1")})
    held = list(backtest_events(path, [rule], horizons=(60,)))
    monkeypatch.setattr("engine.core.backtest.MAX_HELD_SIGNALS", 7)
    summary = {}
    spilled = list(backtest_events(path, [rule], horizons=(60,), summary=summary))
    assert spilled == held
    assert summary == {"bars": 300, "signals": 300, "bar_seconds": 5, "first": T0 + 35,
                       "last": T0 + 35 + 299 * 5}  # fmt: skip
    lines = list(backtest_lines(path, [rule], horizons=(60,)))
    assert len(lines) == 301 and '"outcomes": {"1m": ' in lines[0]


def test_progress_and_errors(tmp_path):
    path = random_csv(tmp_path, 200, seed=4)
    seen = []
    list(backtest_events(path, RULES[:1], progress=lambda done, total: seen.append((done, total))))
    size = path.stat().st_size
    assert seen and seen[-1] == (size, size)
    assert all(0 <= done <= total == size for done, total in seen)
    bad = tmp_path / "bad.csv"
    bad.write_text("time,open,high,low,close,volume\n1765877400,1,1,1,1,1\n1765877400,1,1,1,1,1\n")
    with pytest.raises(ReplayError, match=r"bad\.csv, line 3: bars out of order"):
        list(backtest_events(bad, RULES[:1]))
    with pytest.raises(ReplayError, match="no rule"):
        list(backtest_events(path, []))


def test_lines_are_the_events_encoded_held_or_spilled(tmp_path, monkeypatch):
    """backtest_lines (its own encoder, its spill split at the restamped keys) is, byte for
    byte, the events as the command encodes them, for held and spilled signals alike."""
    import json

    path = random_csv(tmp_path, 400, seed=4, symbols=("AAPL", "MSFT"))
    rules = [
        validate_definition({"id": 7, "name": 'näme "quoted" ✓', "cooldown_sec": 0,
                             "trigger": "level", **parse_text("PRICE > MA5")}),
        validate_definition({"id": 8, "name": "sell", "side": "sell", "cooldown_sec": 30,
                             **parse_text("PRICE < MA5")}),
    ]  # fmt: skip
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    wanted = [dumps(event) for event in backtest_events(path, rules, horizons=(60, 300))]
    assert len(wanted) > 40
    assert list(backtest_lines(path, rules, horizons=(60, 300))) == wanted
    monkeypatch.setattr("engine.core.backtest.MAX_HELD_SIGNALS", 5)
    assert list(backtest_lines(path, rules, horizons=(60, 300))) == wanted
    assert list(backtest_lines(path, rules, horizons=(60, 300), bar_seconds=5)) == wanted


@pytest.mark.parametrize("held", [10_000, 3])
def test_signals_made_before_the_file_shows_its_bar_length_are_restamped(
    tmp_path, monkeypatch, held
):
    """Without --bar-seconds, signals are made with the length the rows read so far show
    and restamped when the end of the file proves a shorter one: here 10-second bars, then
    5-second bars, read in small blocks. Lines and events, held or spilled, come out as with
    --bar-seconds 5."""
    import json

    first = random_csv(tmp_path, 120, seed=5, seconds=10).read_text().splitlines()
    last_start = int(first[-1].split(",")[1])
    rest = random_csv(tmp_path, 120, seed=6, seconds=5).read_text().splitlines()[1:]
    shift = last_start + 10 - int(rest[0].split(",")[1])
    moved = [",".join([r.split(",")[0], str(int(r.split(",")[1]) + shift), *r.split(",")[2:]])
             for r in rest]  # fmt: skip
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(first + moved) + "\n")
    rule = validate_definition({"cooldown_sec": 0, "trigger": "level", **parse_text("PRICE > MA5")})
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    wanted = list(backtest_events(path, [rule], horizons=(60,), bar_seconds=5))
    assert wanted[0]["bar_seconds"] == 5 and len(wanted) > 20
    monkeypatch.setattr("engine.core.bars.FAST_BLOCK_CHARS", 2000)  # a guess of 10 first
    monkeypatch.setattr("engine.core.backtest.MAX_HELD_SIGNALS", held)
    summary = {}
    got = list(backtest_events(path, [rule], horizons=(60,), summary=summary))
    assert summary["bar_seconds"] == 5
    assert got == wanted
    assert list(backtest_lines(path, [rule], horizons=(60,))) == [dumps(e) for e in wanted]
