"""Bars, 5 s → 1 min aggregation, time parsing and the CSV bar reader."""

import dataclasses

import pytest

from engine.core.bars import (
    Bar,
    BarFileError,
    MinuteAggregator,
    default_symbol,
    format_time,
    infer_bar_seconds,
    iter_csv_bars,
    parse_time,
)

T0 = 1_765_877_400  # 2025-12-16 09:30:00 UTC, a minute start


def make_bar(second, close=10.0, *, symbol="AAPL", seconds=5, open=None, high=None, low=None,
             volume=100.0):  # fmt: skip
    open = close if open is None else open
    high = max(open, close) if high is None else high
    low = min(open, close) if low is None else low
    return Bar(symbol, T0 + second, seconds, open, high, low, close, volume)


def make_csv(tmp_path, text, name="aapl_5s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bar_is_frozen_and_knows_its_close_time():
    bar = make_bar(0)
    assert bar.close_time == T0 + 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        bar.close = 1.0  # type: ignore[misc]


def test_a_full_minute_closes_on_its_55_second_bar_with_ohlcv_rules():
    agg = MinuteAggregator()
    closes = [10.0, 10.1, 10.2, 10.1, 10.0, 9.9, 9.95, 10.05, 10.0, 10.02, 10.03, 10.04]
    out = []
    for k, close in enumerate(closes):
        high = 10.5 if k == 4 else close + 0.01
        low = 9.5 if k == 7 else close - 0.01
        out += agg.feed(make_bar(5 * k, close, open=close - 0.005, high=high, low=low,
                                 volume=10 + k))  # fmt: skip
        if k < 11:
            assert out == []
    assert out == [Bar("AAPL", T0, 60, 9.995, 10.5, 9.5, 10.04, sum(10 + k for k in range(12)))]
    assert out[0].close_time == T0 + 60


def test_a_minute_without_its_55_bar_closes_on_the_next_minute_bar():
    agg = MinuteAggregator()
    assert agg.feed(make_bar(0, 10)) == []
    assert agg.feed(make_bar(30, 11)) == []
    closed = agg.feed(make_bar(65, 12))
    assert closed == [Bar("AAPL", T0, 60, 10, 11, 10, 11, 200.0)]
    assert closed[0].close_time == T0 + 60
    assert agg.flush() == [Bar("AAPL", T0 + 60, 60, 12, 12, 12, 12, 100.0)]


def test_a_lone_55_bar_after_a_gap_closes_two_minutes():
    agg = MinuteAggregator()
    agg.feed(make_bar(10, 10))
    closed = agg.feed(make_bar(115, 12))
    assert [b.time for b in closed] == [T0, T0 + 60]


def test_bars_are_bucketed_by_minute_start_in_utc():
    agg = MinuteAggregator()
    closed = [b for s in range(0, 180, 5) for b in agg.feed(make_bar(s + 25))]
    assert [b.time % 60 for b in closed] == [0, 0, 0]
    assert [b.time for b in closed] == [T0, T0 + 60, T0 + 120]
    assert closed[0].volume == 700.0  # seconds 25..55 of the first minute


def test_aggregation_is_per_symbol_and_ignores_redelivered_bars():
    agg = MinuteAggregator()
    for s in range(0, 55, 5):
        agg.feed(make_bar(s, symbol="AAPL"))
        agg.feed(make_bar(s, symbol="MSFT", close=20))
        assert agg.feed(make_bar(s, symbol="AAPL")) == []  # duplicate
    assert [b.symbol for b in agg.feed(make_bar(55, symbol="MSFT", close=20))] == ["MSFT"]
    aapl = agg.feed(make_bar(55, symbol="AAPL"))
    assert aapl[0].volume == 1200.0
    assert agg.feed(make_bar(50, symbol="AAPL")) == []  # minute already closed


def test_flush_before_closes_only_finished_minutes():
    agg = MinuteAggregator()
    agg.feed(make_bar(0, symbol="AAPL"))
    agg.feed(make_bar(60, symbol="MSFT"))
    assert [b.symbol for b in agg.flush(before=T0 + 60)] == ["AAPL"]
    assert agg.flush(before=T0 + 60) == []
    assert [b.symbol for b in agg.flush("MSFT")] == ["MSFT"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1765877460", 1765877460),
        ("2025-12-16T09:31:00", 1765877460),
        ("2025-12-16 09:31:00", 1765877460),
        ("2025-12-16T09:31:00Z", 1765877460),
        ("2025-12-16T10:31:00+01:00", 1765877460),
        ("2025-12-16T04:31:00-05:00", 1765877460),
        ("1765877460.0", 1765877460),
        (" 2025-12-16T09:31:00 ", 1765877460),
    ],
)
def test_parse_time_accepts_epoch_and_iso(text, expected):
    assert parse_time(text) == expected
    assert format_time(expected) == "2025-12-16T09:31:00Z"


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2025-13-01T00:00:00", "2025-12-16T25:00:00", "1.5", "nan",
             "2025-12-16T09:31:00.5", "２０２５"],
)  # fmt: skip
def test_parse_time_rejects_garbage_with_value_error(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_default_symbol_comes_from_the_file_name():
    assert default_symbol("/x/aapl_5s.csv") == "AAPL"
    assert default_symbol("BRK.B.csv") == "BRK.B"
    assert default_symbol("msft-2025.csv") == "MSFT"
    assert default_symbol("_x.csv") == "SYMBOL"


def test_reads_bars_and_infers_bar_seconds(tmp_path):
    path = make_csv(tmp_path, "time,open,high,low,close,volume\n"
                    "2025-12-16T09:30:00,1,2,0.5,1.5,100\n2025-12-16T09:30:05,1.5,2,1,2,50\n"
                    "2025-12-16T09:30:20,2,3,1,2.5,0\n")  # fmt: skip
    bars = list(iter_csv_bars(path))
    assert bars[0] == Bar("AAPL", T0, 5, 1.0, 2.0, 0.5, 1.5, 100.0)
    assert [b.time - T0 for b in bars] == [0, 5, 20]
    assert {b.seconds for b in bars} == {5}
    assert [b.symbol for b in iter_csv_bars(path, symbol="tsla")] == ["TSLA"] * 3
    assert {b.seconds for b in iter_csv_bars(path, bar_seconds=4)} == {4}


def test_columns_in_any_order_with_symbol_and_epoch_times(tmp_path):
    body = "Symbol,Volume,Close,Low,High,Open,Time\n"
    body += f"msft,10,2,1,3,2,{T0}\naapl,10,5,4,6,5,{T0}\nmsft,10,2,1,3,2,{T0 + 60}\n"
    path = make_csv(tmp_path, body)
    bars = list(iter_csv_bars(path))
    assert [(b.symbol, b.time - T0, b.seconds) for b in bars] == [
        ("MSFT", 0, 60), ("AAPL", 0, 60), ("MSFT", 60, 60)
    ]  # fmt: skip
    assert [b.symbol for b in iter_csv_bars(path, symbol="AAPL")] == ["AAPL"]
    assert infer_bar_seconds(path, symbol="AAPL") is None


def test_single_bar_file_defaults_to_one_minute(tmp_path):
    path = make_csv(tmp_path, f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\n")
    assert [b.seconds for b in iter_csv_bars(path)] == [60]


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("time,open,high,low,close\n", 1, "missing column volume"),
        ("open,high,low,close\n", 1, "missing columns time, volume"),
        ("", 1, "empty"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\n{T0 + 5},1,x,1,1,1\n", 3,
         "column high: 'x' is not a number"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\nnoon,1,1,1,1,1\n", 3,
         "unreadable time 'noon'"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\n{T0 + 5},1,1,1,1\n", 3,
         "expected 6 fields"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,nan,1\n", 2, "not a finite number"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,-1,1\n", 2, "must be positive"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,1,-5\n", 2, "negative"),
        (f"time,open,high,low,close,volume\n{T0 + 5},1,1,1,1,1\n{T0},1,1,1,1,1\n", 3,
         "out of order"),
        (f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\n{T0},1,1,1,1,1\n", 3,
         "out of order"),
        (f"symbol,time,open,high,low,close,volume\nA,{T0},1,1,1,1,1\n,{T0 + 5},1,1,1,1,1\n", 3,
         "empty symbol"),
    ],
)  # fmt: skip
def test_bad_files_raise_one_line_naming_file_line_and_problem(tmp_path, body, line, words):
    path = make_csv(tmp_path, body)
    with pytest.raises(BarFileError) as info:
        list(iter_csv_bars(path))
    err = info.value
    assert err.line == line
    assert words in err.problem
    assert str(err).startswith(f"{path}, line {line}: ")
    assert "\n" not in str(err)


def test_per_symbol_order_only(tmp_path):
    body = "symbol,time,open,high,low,close,volume\n"
    body += f"A,{T0 + 60},1,1,1,1,1\nB,{T0},1,1,1,1,1\nB,{T0 + 60},1,1,1,1,1\n"
    path = make_csv(tmp_path, body)
    assert len(list(iter_csv_bars(path))) == 3


def test_overlapping_bars_for_the_given_bar_length_are_an_error(tmp_path):
    path = make_csv(tmp_path, f"time,open,high,low,close,volume\n{T0},1,1,1,1,1\n"
                    f"{T0 + 5},1,1,1,1,1\n")  # fmt: skip
    with pytest.raises(BarFileError, match="bars are 60 s long; check --bar-seconds"):
        list(iter_csv_bars(path, bar_seconds=60))


def test_missing_file_is_a_bar_file_error(tmp_path):
    with pytest.raises(BarFileError, match="cannot open"):
        list(iter_csv_bars(tmp_path / "nope.csv"))


# --- the fast block reader agrees with the careful row-by-row one -------------------------

GOOD_ROWS = [
    "2025-12-16T09:30:00,189.20,189.21,189.19,189.20,2100",
    "2025-12-16T09:30:05,189.2,189.25,189.2,189.22,0",
    "2025-12-16 09:30:10,189.22,189.3,189.1,189.29,100.5",
    "2025-12-16T09:30:15Z,189.29,189.29,189.29,189.29,7",
]


def read_both(path, monkeypatch, block=64, **kwargs):
    options = {"symbol": None, **kwargs}
    """(result or error text) with the fast path in small blocks, and with it off."""
    import engine.core.bars as bars

    out = []
    for chars in (block, 0):
        monkeypatch.setattr(bars, "FAST_BLOCK_CHARS", chars)
        try:
            out.append(list(bars.read_csv_rows(path, min_gap=[0], bar_seconds=0, **options)))
        except BarFileError as err:
            out.append(str(err))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_and_careful_readers_agree_on_good_files(tmp_path, monkeypatch, seed):
    import random

    rng = random.Random(seed)
    lines = []
    t = T0
    for i in range(300):
        t += rng.choice((5, 5, 5, 10, 60))
        o, c = rng.randint(1, 10**6) / 100, rng.randint(1, 10**6) / 100
        stamp = format_time(t)[:-1] if i % 3 else str(t)
        if i > 150:  # from here on one style per block-ish: all ISO or all epoch
            stamp = format_time(t)[: 19 if seed != 2 else 20]
        lines.append(f"AAPL,{stamp},{o},{max(o, c)},{min(o, c)},{c},{rng.randint(0, 9999)}")
    newline = "\r\n" if seed == 3 else "\n"
    path = make_csv(tmp_path, newline.join(["symbol,time,open,high,low,close,volume", *lines]))
    import engine.core.bars as bars

    taken = []
    block = bars._FastBlocks.block

    def counting(self, lines, text):
        result = block(self, lines, text)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(bars._FastBlocks, "block", counting)
    fast, careful = read_both(path, monkeypatch, block=rng.choice((64, 300, 4000)))
    assert isinstance(fast, list) and len(fast) == 300
    assert fast == careful
    assert sum(taken) >= len(taken) / 3  # the fast path read most of it


BAD_ROWS = [
    "2025-12-16T09:30:05,189.2,189.2,189.2,0,1",  # zero price
    "2025-12-16T09:30:05,189.2,189.2,189.2,-1,1",
    "2025-12-16T09:30:05,nan,189.2,189.2,189.2,1",
    "2025-12-16T09:30:05,189.2,189.2,189.2,189.2,inf",
    "2025-12-16T09:30:05,189.2,189.2,189.2,189.2,-5",
    "2025-12-16T09:30:05,1.000000001,2,1,1,1",  # finer than 1e-8
    "2025-12-16T09:30:05,1e2,1e2,1e2,1e2,1",
    "2025-12-16T09:30:05," + "9" * 5000 + ",1,1,1,1",
    "2025-12-16T09:30:05,²,1,1,1,1",  # a Unicode digit
    "2025-12-16T09:30:05,1.2.3,1,1,1,1",
    "2025-12-16T09:30:00,1,1,1,1,1",  # not after the previous bar
    "2025-12-16T09:29:00,1,1,1,1,1",
    "2025-12-16T24:00:05,1,1,1,1,1",
    "2025-02-30T09:30:05,1,1,1,1,1",
    "2025-12-16T09:30:0²,1,1,1,1,1",
    "2100-01-01T00:00:00,1,1,1,1,1",
    "4102444800,1,1,1,1,1",
    "1765877405.5,1,1,1,1,1",
    "1765877405,1,1,1,1",  # a field short
    "1765877405,1,1,1,1,1,extra",  # a field more: fine
    "",
    '"2025-12-16T09:30:05",1,1,1,1,1',  # quoted: fine
    "2025-12-16T09:30:05,1,1\x00,1,1,1",
    "2025-12-16T09:30:05,1,1,1,1,1\r",
    "2025-12-16T09:30:05,,1,1,1,1",  # an empty price
    "2025-12-16T09:30:05,1234567.89,1,1,1,1",  # ten characters: float() decides
    "2025-12-16T09:30:05, 1.5,1,1,1,1",
    "2025-12-16 09:30:05Z,1,1,1,1,1",  # a time shape the others lack: fine
    "17658774050,1,1,1,1,1",  # eleven digits
    "2025-12-16T09:30:05,１,1,1,1,1",  # a full-width digit
]


@pytest.mark.parametrize("bad", BAD_ROWS)
@pytest.mark.parametrize("where", [1, 40])
def test_fast_and_careful_readers_agree_on_bad_rows(tmp_path, monkeypatch, bad, where):
    good = [
        format_time(T0 - 5 * (50 - k))[:-1] + ",189.2,189.3,189.1,189.25,100" for k in range(50)
    ]
    rows = [*good[:where], bad, *(r.replace("2025-12-16", "2025-12-17") for r in good[where:])]
    path = make_csv(tmp_path, "\n".join(["time,open,high,low,close,volume", *rows]) + "\n")
    fast, careful = read_both(path, monkeypatch)
    assert fast == careful


def test_fast_reader_symbol_filter_and_check(tmp_path, monkeypatch):
    rows = [f"{sym},{T0 + 5 * k},1.5,1.5,1.5,1.5,1" for k in range(40) for sym in ("AA",)]
    rows += [f"{sym},{T0 + 500 + 5 * k},2,2,2,2,1" for k in range(40) for sym in ("BB", "aa")]
    path = make_csv(tmp_path, "\n".join(["symbol,time,open,high,low,close,volume", *rows]))
    for kwargs in ({}, {"symbol": "aa"}, {"symbol": "CC"}, {"check_symbol": str.lower}):
        fast, careful = read_both(path, monkeypatch, **kwargs)
        assert fast == careful
        assert isinstance(fast, list)

    def refuse(symbol):
        if symbol == "BB":
            raise ValueError("no such symbol")
        return symbol

    fast, careful = read_both(path, monkeypatch, check_symbol=refuse)
    assert fast == careful == f"{path}, line 42: column symbol: no such symbol"


def seen_by(seen: list[tuple[int, int]]):
    """A progress callback that notes each call in ``seen``."""

    def progress(done: int, total: int) -> None:
        seen.append((done, total))

    return progress


def test_progress_reaches_the_file_size_on_the_fast_and_the_careful_path(tmp_path, monkeypatch):
    import engine.core.bars as bars

    rows = [f"{T0 + 5 * k},1.5,1.5,1.5,1.5,1" for k in range(10_000)]
    rows[9_000] = f'"{T0 + 5 * 9_000}",1.5,1.5,1.5,1.5,1'  # a quote: row by row from there
    path = make_csv(tmp_path, "\n".join(["time,open,high,low,close,volume", *rows]) + "\n")
    size = path.stat().st_size
    monkeypatch.setattr(bars, "FAST_BLOCK_CHARS", 4096)
    for chars in (4096, 0):
        monkeypatch.setattr(bars, "FAST_BLOCK_CHARS", chars)
        seen: list[tuple[int, int]] = []
        got = bars.read_csv_rows(
            path, symbol=None, bar_seconds=5, min_gap=None, progress=seen_by(seen)
        )
        assert sum(1 for _ in got) == 10_000
        assert len(seen) >= 2 and seen[-1] == (size, size)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
