"""Signal outcomes (DESIGN §7.3): the formulas, finality, sides, gaps, the tracker agreeing
with the straightforward definition, horizons parsing, and the statistics."""

import math
import random
import statistics

import pytest

from engine.core.outcomes import (
    HorizonError,
    Outcome,
    OutcomeTracker,
    format_horizons,
    horizon_label,
    outcome_of,
    parse_horizons,
)
from engine.core.stats import HorizonStats, RuleStats

T = 1_765_877_400  # a signal's bar close time


def bar(close_time, high, low, close):
    return (close_time, high, low, close)


def test_buy_formulas_over_the_window_only():
    bars = [
        bar(T, 500.0, 1.0, 100.0),  # the signal's own bar: not in (T, T+H]
        bar(T + 5, 101.0, 99.5, 100.5),
        bar(T + 60, 102.0, 99.0, 101.0),  # close time T+60: in the 1m window
        bar(T + 65, 110.0, 90.0, 95.0),  # after T+60: not in it
    ]
    out = outcome_of(100.0, "buy", T, 60, bars)
    assert out == Outcome(60, 1.0, 2.0, -1.0)
    # no side reads like buy
    assert outcome_of(100.0, None, T, 60, bars) == out


def test_sell_negates_and_swaps_high_and_low():
    bars = [bar(T + 5, 101.0, 99.5, 100.5), bar(T + 60, 102.0, 99.0, 101.0)]
    # favourable is down: MFE from the lowest low, MAE from the highest high
    assert outcome_of(100.0, "sell", T, 60, bars) == Outcome(60, -1.0, 1.0, -2.0)


def test_no_float_noise_and_no_negative_zero():
    out = outcome_of(189.2, "buy", T, 5, [bar(T + 5, 189.3, 189.2, 189.2)])
    assert out.return_pct == 0.0 and str(out.return_pct) == "0.0"
    assert out.mae_pct == 0.0 and str(out.mae_pct) == "0.0"
    assert out.mfe_pct == 0.052854  # (189.3 − 189.2) / 189.2 × 100, to 1e-6 %
    sell = outcome_of(189.2, "sell", T, 5, [bar(T + 5, 189.2, 189.2, 189.2)])
    assert [str(v) for v in (sell.return_pct, sell.mfe_pct, sell.mae_pct)] == ["0.0"] * 3


def test_an_empty_window_has_no_values():
    assert outcome_of(100.0, "buy", T, 60, [bar(T + 3600, 1, 1, 1)]) == Outcome(
        60, None, None, None
    )


def test_tracker_final_on_the_bar_that_reaches_the_end():
    tracker = OutcomeTracker([60, 300])
    tracker.add(7, "AAPL", 100.0, "buy", T)
    assert tracker.on_bar("AAPL", T + 55, 101.0, 100.0, 100.5) == []
    done = tracker.on_bar("AAPL", T + 60, 102.0, 99.0, 101.0)
    assert done == [(7, Outcome(60, 1.0, 2.0, -1.0))]
    # a re-delivered bar changes nothing
    assert tracker.on_bar("AAPL", T + 60, 200.0, 1.0, 150.0) == []
    # a gap: the first bar after T+300 closes the 5m window without being in it
    done = tracker.on_bar("AAPL", T + 900, 300.0, 1.0, 200.0)
    assert done == [(7, Outcome(300, 1.0, 2.0, -1.0))]
    assert tracker.open_count() == 0


def test_tracker_other_symbols_do_not_count():
    tracker = OutcomeTracker([60])
    tracker.add("a", "AAPL", 100.0, None, T)
    assert tracker.on_bar("MSFT", T + 60, 1000.0, 1.0, 500.0) == []
    assert tracker.on_bar("AAPL", T + 60, 100.0, 100.0, 100.0) == [
        ("a", Outcome(60, 0.0, 0.0, 0.0))
    ]


def test_flush_names_what_the_data_ended_before():
    tracker = OutcomeTracker([60, 300])
    tracker.add(1, "AAPL", 100.0, None, T)
    tracker.on_bar("AAPL", T + 60, 100.0, 100.0, 100.0)
    assert tracker.flush() == [(1, 300)]


def pairs(done, together):
    """``(key, Outcome)`` pairs of what the tracker gave (together: ``(key, (Outcome, ...))``,
    one per signal, shortest horizon first)."""
    if not together:
        return done
    out = []
    for key, outcomes in done:
        assert isinstance(outcomes, tuple)
        assert [o.horizon for o in outcomes] == sorted(o.horizon for o in outcomes)
        out.extend((key, o) for o in outcomes)
    return out


@pytest.mark.parametrize("together", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_tracker_equals_the_definition_on_random_data(seed, together):
    """Both ways (per horizon, and together: a signal's outcomes all on the bar that ends
    its longest horizon, as a backtest reads them) agree with outcome_of, including the
    shorter horizons final when the data ends (settled)."""
    rng = random.Random(seed)
    horizons = (60, 300, 900)
    tracker = OutcomeTracker(horizons, together=together)
    symbols = ["AAPL", "MSFT"]
    bars = {s: [] for s in symbols}
    signals = {}
    finals = {}
    t = T
    price = dict.fromkeys(symbols, 100.0)
    for _ in range(4000):
        t += 5 if rng.random() > 0.01 else rng.choice([60, 600, 3600])
        for s in symbols:
            if rng.random() < 0.1:
                continue  # this symbol has no bar now
            p = max(1.0, price[s] + rng.choice([-0.05, 0, 0.05]))
            hi, lo = p + rng.choice([0, 0.01, 0.1]), p - rng.choice([0, 0.01, 0.1])
            price[s] = p
            for key, out in pairs(tracker.on_bar(s, t, hi, lo, p), together):
                assert (key, out.horizon) not in finals
                finals[key, out.horizon] = out
            bars[s].append(bar(t, hi, lo, p))
            if rng.random() < 0.08:
                key = len(signals)
                side = rng.choice([None, "buy", "sell"])
                signals[key] = (s, p, side, t)
                tracker.add(key, s, p, side, t)
    for key, out in pairs(tracker.settled(), True):
        assert together
        assert (key, out.horizon) not in finals
        finals[key, out.horizon] = out
    still_open = set(tracker.flush())
    for key, (s, p, side, close_time) in signals.items():
        for h in horizons:
            if (key, h) in still_open:
                assert bars[s][-1][0] < close_time + h
                continue
            assert finals[key, h] == outcome_of(p, side, close_time, h, bars[s])
    assert len(finals) + len(still_open) == len(signals) * len(horizons)


def test_tracker_memory_stays_a_horizon_long():
    tracker = OutcomeTracker([60])
    for i in range(20_000):
        t = T + 5 * i
        tracker.on_bar("AAPL", t, 1.0, 1.0, 1.0)
        if i % 12 == 0:
            tracker.add(i, "AAPL", 1.0, None, t)
    window = tracker._windows["AAPL"]
    assert len(window.closes) < 200


def test_tracker_together_gives_a_signals_outcomes_at_once_shortest_first():
    tracker = OutcomeTracker([300, 60], together=True)
    tracker.add("a", "AAPL", 100.0, "sell", T)
    tracker.add("b", "AAPL", 100.0, None, T + 5)
    got = []
    for i in range(1, 70):
        got.append((i, tracker.on_bar("AAPL", T + 5 * i, 100.0 + i, 99.0, 100.0 - i / 100)))
    finals = [
        (i, [(key, [o.horizon for o in outs]) for key, outs in done]) for i, done in got if done
    ]
    assert finals == [(60, [("a", [60, 300])]), (61, [("b", [60, 300])])]
    assert got[59][1][0][1][1] == outcome_of(
        100.0, "sell", T, 300, [(T + 5 * i, 100.0 + i, 99.0, 100.0 - i / 100) for i in range(1, 61)]
    )
    assert tracker.open_count() == 0
    tracker.add("c", "AAPL", 100.0, None, T + 5 * 69)
    tracker.on_bar("AAPL", T + 5 * 69 + 60, 101.0, 99.0, 100.5)  # ends c's 1m, not its 5m
    assert tracker.open_count() == 2
    assert tracker.settled() == [("c", (Outcome(60, 0.5, 1.0, -1.0),))]
    assert tracker.flush() == [("c", 300)]


@pytest.mark.parametrize(
    ("text", "horizons"),
    [
        ("1m,5m,15m", (60, 300, 900)),
        (" 15M , 1m,5m ", (60, 300, 900)),
        ("30s,1h", (30, 3600)),
        ("90s", (90,)),
        ("24h", (86400,)),
    ],
)
def test_parse_horizons(text, horizons):
    assert parse_horizons(text) == horizons
    assert parse_horizons(format_horizons(horizons)) == horizons


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "at least one"),
        ("1m,,5m", "not a horizon"),
        ("²m", "not a horizon"),
        ("５m", "not a horizon"),
        ("1d", "not a horizon"),
        ("-1m", "not a horizon"),
        ("0s", "between 1s and 24h"),
        ("25h", "between 1s and 24h"),
        ("9" * 5000 + "m", "not a horizon"),
        ("1m\x00", "not a horizon"),
        ("1m,60s", "given twice"),
        ("1s,2s,3s,4s,5s,6s,7s", "at most 6"),
    ],
)
def test_bad_horizons_are_one_sentence(text, words):
    with pytest.raises(HorizonError) as err:
        parse_horizons(text)
    assert words in str(err.value)
    assert len(str(err.value)) < 200


def test_horizon_labels():
    assert [horizon_label(s) for s in (5, 60, 90, 300, 3600, 5400)] == [
        "5s", "1m", "90s", "5m", "1h", "90m",
    ]  # fmt: skip


def test_stats_figures():
    stats = HorizonStats(60)
    for value in (1.0, -0.5, 0.0, 2.5):
        stats.add(Outcome(60, value, abs(value) + 0.1, -0.2))
    stats.add(Outcome(60, None, None, None))  # a closed market: not counted
    stats.add(None)  # still open: not counted
    out = stats.to_json()
    assert out == {
        "horizon": "1m",
        "count": 4,
        "hits": 2,
        "hit_rate": 0.5,
        "mean_return_pct": 0.75,
        "median_return_pct": statistics.median([1.0, -0.5, 0.0, 2.5]),
        "mean_mfe_pct": 1.1,
        "mean_mae_pct": -0.2,
    }
    assert stats.empty == 1
    assert sum(stats.distribution()) == 4


def test_rule_stats_with_nothing():
    stats = RuleStats((60, 300))
    stats.add_signal([None, None])
    out = stats.to_json()
    assert out["signals"] == 1
    assert out["horizons"]["5m"]["count"] == 0
    assert out["horizons"]["5m"]["hit_rate"] is None


def test_blocks_taken_whole_keep_the_window_small_and_agree_with_the_definition():
    """The bulk path (a backtest over the reader's column blocks): ``extend`` a block, add
    the signals fired on it, take what is final by the block's last bar; memory stays about
    a block plus the longest horizon, and the outcomes are the definition's."""
    horizons = (60, 300)
    tracker = OutcomeTracker(horizons, together=True)
    rng = random.Random(3)
    bars, finals, signals, longest_window = [], {}, {}, 0
    t = T
    for block in range(200):
        rows = []
        for _ in range(50):
            t += 5 if rng.random() > 0.02 else 900
            p = 100.0 + rng.choice([-0.1, 0, 0.1]) * (block % 7)
            rows.append((t, p + 0.05, p - 0.05, p))
        bars.extend(rows)
        window = tracker.extend("AAPL", *map(list, zip(*rows, strict=True)))
        longest_window = max(longest_window, len(window.closes))
        for key, outs in tracker._finals("AAPL", window, window.last, True):
            finals[key] = outs
        for close_time, _, _, price in rows:
            if block % 50 < 40 and rng.random() < 0.1:  # signals in most blocks
                key = len(signals)
                signals[key] = (price, close_time)
                tracker.add(key, "AAPL", price, None, close_time)
                for key, outs in tracker._finals("AAPL", window, window.last, True):
                    finals[key] = outs
        tracker.drop_idle("AAPL")
    for key, outs in tracker.settled():
        finals.setdefault(key, outs)
    assert longest_window < 2 * 50 + 300 // 5 + 70  # never the whole history (10,000 bars)
    assert len(signals) > 50
    for key, (price, close_time) in signals.items():
        for index, h in enumerate(horizons):
            if bars[-1][0] < close_time + h:
                assert len(finals.get(key, ())) <= index
                continue
            assert finals[key][index] == outcome_of(price, None, close_time, h, bars)


def test_the_fast_percentage_rounding_is_round_itself():
    """``_pct`` takes a shortcut past ``round(x, 6)``: the same float (compared by repr, so
    -0.0 and 0.0 differ) on random values of every size, exact halves and their neighbours,
    and returns as the outcome formula makes them."""
    from engine.core.outcomes import _pct

    rng = random.Random(13)
    values = [(rng.random() - 0.5) * 10.0 ** rng.randint(-9, 14) for _ in range(100_000)]
    for k in range(0, 2_000_000, 29):
        half = (k + 0.5) / 1e6
        values += [half, -half, math.nextafter(half, 0), math.nextafter(half, 1)]
    for _ in range(100_000):
        price = round(rng.uniform(0.0001, 5000), 4)
        other = round(price * rng.uniform(0.9, 1.1), 4)
        values.append((other - price) * (100.0 / price))
    values += [0.0, -0.0, -1e-9, 5e-7, -5e-7, 1e13, -1e13]
    wrong = [v for v in values if repr(_pct(v)) != repr(round(v, 6) + 0.0)]
    assert not wrong, wrong[:5]
