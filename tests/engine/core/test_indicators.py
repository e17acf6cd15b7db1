"""Incremental indicators against straightforward recomputation and against talipp."""

import math
import random
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from talipp.indicators import BB as TalippBB
from talipp.indicators import EMA as TalippEMA
from talipp.indicators import RSI as TalippRSI
from talipp.indicators import SMA as TalippSMA
from talipp.indicators import VWAP as TalippVWAP
from talipp.ohlcv import OHLCV

from engine.core.indicators import SCALE, Bollinger, Ema, Rsi, Sma, Vwap, price_to_int

# Two-decimal prices, the case where plain float sums go wrong.
PRICES = st.lists(st.integers(1, 500_000).map(lambda cents: cents / 100), min_size=1, max_size=300)
PERIODS = st.integers(2, 30)


def make_prices(n: int, *, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    price, out = 100.0, []
    for _ in range(n):
        price = max(0.01, round(price + rng.choice((-0.03, -0.01, 0.0, 0.01, 0.02)), 2))
        out.append(price)
    return out


def exact(indicator) -> Fraction | None:
    return None if indicator.num is None else Fraction(indicator.num) / indicator.den


def recompute_sma(prices, n):
    return Fraction(sum(Fraction(str(p)) for p in prices[-n:])) / n


@settings(max_examples=200)
@given(PRICES, PERIODS)
def test_sma_equals_exact_recomputation_on_every_bar(prices, n):
    sma = Sma(n, SCALE)
    for i, price in enumerate(prices):
        sma.update(price_to_int(price))
        if i + 1 < n:
            assert sma.num is None
        else:
            assert exact(sma) == recompute_sma(prices[: i + 1], n)


def recompute_ema(prices, n):
    if len(prices) < n:
        return None
    ema = sum(prices[:n]) / n
    k = 2 / (n + 1)
    for price in prices[n:]:
        ema = ema + k * (price - ema)
    return ema


@settings(max_examples=200)
@given(PRICES, PERIODS)
def test_ema_matches_recomputation_seeded_with_the_sma(prices, n):
    ema = Ema(n, SCALE)
    for i, price in enumerate(prices):
        ema.update(price_to_int(price))
        expected = recompute_ema(prices[: i + 1], n)
        if expected is None:
            assert ema.num is None
        else:
            assert ema.value == pytest.approx(expected, rel=1e-9)


def recompute_rsi(prices, n):
    if len(prices) < n + 1:
        return None
    changes = [b - a for a, b in zip(prices, prices[1:], strict=False)]
    gain = sum(max(c, 0) for c in changes[:n]) / n
    loss = sum(max(-c, 0) for c in changes[:n]) / n
    for c in changes[n:]:
        gain = (gain * (n - 1) + max(c, 0)) / n
        loss = (loss * (n - 1) + max(-c, 0)) / n
    return 100 * gain / (gain + loss) if gain + loss else 0.0


@settings(max_examples=200)
@given(PRICES, PERIODS)
def test_rsi_matches_wilder_recomputation(prices, n):
    rsi = Rsi(n)
    for i, price in enumerate(prices):
        rsi.update(price_to_int(price))
        expected = recompute_rsi(prices[: i + 1], n)
        if expected is None:
            assert rsi.num is None
        else:
            assert rsi.value == pytest.approx(expected, abs=1e-7)


@settings(max_examples=200)
@given(PRICES, PERIODS)
def test_bollinger_matches_population_stddev_recomputation(prices, n):
    bands = Bollinger(n, SCALE)
    for i, price in enumerate(prices):
        bands.update(price_to_int(price))
        if i + 1 < n:
            assert bands.upper.num is None and bands.lower.num is None
            continue
        window = prices[i + 1 - n : i + 1]
        mean = statistics.fmean(window)
        sd = statistics.pstdev(window)
        assert bands.upper.value == pytest.approx(mean + 2 * sd, rel=1e-9, abs=1e-9)
        assert bands.lower.value == pytest.approx(mean - 2 * sd, rel=1e-9, abs=1e-9)


BARS = st.lists(
    st.tuples(st.integers(1, 100_000), st.integers(0, 300), st.integers(0, 300),
              st.integers(0, 5000)),
    min_size=1, max_size=200,
)  # fmt: skip


@settings(max_examples=200)
@given(BARS, st.integers(0, 3))
def test_vwap_matches_recomputation_and_resets_each_session(rows, day_every):
    vwap = Vwap(SCALE, session_key=lambda t: t // 1000)
    history, t = [], 0
    for i, (low_cents, up, down, volume) in enumerate(rows):
        t += 1000 if day_every and i % (day_every + 1) == 0 else 5
        low = low_cents / 100
        close = (low_cents + down) / 100
        high = (low_cents + down + up) / 100
        vwap.update(t, price_to_int(high), price_to_int(low), price_to_int(close), float(volume))
        history = [h for h in history if h[0] // 1000 == t // 1000] + [
            (t, high, low, close, volume)
        ]
        total = sum(h[4] for h in history)
        if total == 0:
            assert vwap.num is None
        else:
            expected = sum((h[1] + h[2] + h[3]) / 3 * h[4] for h in history) / total
            assert vwap.value == pytest.approx(expected, rel=1e-9)


def test_default_vwap_session_is_the_new_york_trading_day():
    vwap = Vwap(SCALE)
    day = 1765843200  # 2025-12-16 00:00 UTC
    vwap.update(day + 14 * 3600 + 30 * 60, 100 * SCALE, 100 * SCALE, 100 * SCALE, 10)
    vwap.update(day + 20 * 3600, 110 * SCALE, 110 * SCALE, 110 * SCALE, 10)  # 15:00 New York
    assert vwap.value == 105
    vwap.update(day + 86400 + 9 * 3600, 120 * SCALE, 120 * SCALE, 120 * SCALE, 10)  # next day
    assert vwap.value == 120


@pytest.mark.parametrize("price", [0.01, 1.1, 100.07, 189.2, 189.23, 4999.99])
@pytest.mark.parametrize("n", [2, 3, 5, 7, 10, 20])
def test_flat_market_is_exactly_at_the_price(price, n):
    p = price_to_int(price)
    sma, ema, bands, vwap = Sma(n, SCALE), Ema(n, SCALE), Bollinger(n, SCALE), Vwap(SCALE)
    for i in range(3 * n):
        sma.update(p)
        ema.update(p)
        bands.update(p)
        vwap.update(i * 5, p, p, p, 100.0)
    for value in (sma, ema, bands.upper, bands.lower, vwap):
        assert value.num * SCALE == p * value.den
    # The float way gets about half of these wrong, which is why SMA uses integers.
    assert sma.value == price


def test_flat_rsi_follows_ta_lib_and_is_zero():
    rsi = Rsi(14)
    for _ in range(20):
        rsi.update(price_to_int(50.0))
    assert rsi.value == 0.0


def test_buffers_are_bounded():
    sma, bands = Sma(20, SCALE), Bollinger(20, SCALE)
    for price in make_prices(5000):
        sma.update(price_to_int(price))
        bands.update(price_to_int(price))
    assert len(sma._buf) == 20 and len(bands._buf) == 20


# --- cross-check with talipp (same conventions: SMA seed for EMA, Wilder RSI, population BB)


@pytest.mark.parametrize("n", [2, 5, 14, 20, 50])
def test_values_agree_with_talipp(n):
    prices = make_prices(800, seed=n)
    ours = {"sma": Sma(n, SCALE), "ema": Ema(n, SCALE), "rsi": Rsi(n), "bb": Bollinger(n, SCALE)}
    theirs = {"sma": TalippSMA(n), "ema": TalippEMA(n), "rsi": TalippRSI(n), "bb": TalippBB(n, 2)}
    for price in prices:
        for ind in ours.values():
            ind.update(price_to_int(price))
        for ind in theirs.values():
            ind.add(price)
        for key in ("sma", "ema", "rsi"):
            expected = theirs[key][-1]
            if expected is None:
                assert ours[key].num is None, key
            else:
                assert ours[key].value == pytest.approx(expected, rel=1e-9, abs=1e-9), key
        band = theirs["bb"][-1]
        if band is None:
            assert ours["bb"].upper.num is None
        else:
            assert ours["bb"].upper.value == pytest.approx(band.ub, rel=1e-9)
            assert ours["bb"].lower.value == pytest.approx(band.lb, rel=1e-9)


def test_vwap_agrees_with_talipp_within_a_session():
    prices = make_prices(500, seed=3)
    ours, theirs = Vwap(SCALE, session_key=lambda t: 0), TalippVWAP()
    for i, close in enumerate(prices):
        high, low, volume = close + 0.02, close - 0.01, float(100 + i % 37)
        ours.update(i * 5, price_to_int(high), price_to_int(low), price_to_int(close), volume)
        theirs.add(OHLCV(close, high, low, close, volume))
        assert ours.value == pytest.approx(theirs[-1], rel=1e-9)


def test_rsi_differs_from_talipp_only_on_a_perfectly_flat_window():
    # TA-Lib says 0 when there was no gain and no loss; talipp says 100. We follow TA-Lib.
    ours, theirs = Rsi(5), TalippRSI(5)
    for _ in range(8):
        ours.update(price_to_int(10.0))
        theirs.add(10.0)
    assert (ours.value, theirs[-1]) == (0.0, 100.0)
    assert not math.isnan(ours.value)
