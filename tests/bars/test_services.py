"""The bar store services: store (skipping duplicates), prune boundary, range reads."""

from datetime import UTC, datetime

import pytest

from bars import services
from bars.models import StoredBar
from engine.core.bars import Bar

pytestmark = pytest.mark.django_db

T0 = 1_764_000_000  # 2025-11-24 16:00 UTC, a multiple of 60


def make_bar(time: int, *, symbol: str = "AAPL", seconds: int = 5, close: float = 100.0) -> Bar:
    return Bar(symbol, time, seconds, close - 0.5, close + 1, close - 1, close, 10.0)


def test_store_skips_bars_already_stored():
    first = [make_bar(T0 + 5 * i, close=100 + i) for i in range(3)]
    assert services.bars_store(first) == 3
    again = [make_bar(T0 + 5, close=999.0), make_bar(T0 + 15, close=103)]
    assert services.bars_store(again) == 1
    assert services.bars_store([]) == 0
    assert StoredBar.objects.count() == 4
    # the first copy wins: a re-delivered bar never rewrites history
    assert StoredBar.objects.get(time=T0 + 5).close == 101
    # same start, other size or symbol: separate bars
    assert services.bars_store([make_bar(T0, seconds=60), make_bar(T0, symbol="MSFT")]) == 2


def test_store_many_bars_in_batches(monkeypatch):
    monkeypatch.setattr(services, "STORE_BATCH", 7)
    bars = [make_bar(T0 + 5 * i) for i in range(50)]
    assert services.bars_store(bars[:20]) == 20
    assert services.bars_store(bars) == 30
    assert StoredBar.objects.count() == 50


def test_stored_bar_reads_back_exactly():
    bar = Bar("ES:FUT:CME", T0, 60, 5000.25, 5001.5, 4999.75, 5000.5, 1234.0)
    services.bars_store([bar])
    assert services.bars_recent("ES:FUT:CME", 60, count=1) == [bar]
    assert list(services.bars_between("ES:FUT:CME", 60, T0, T0 + 60)) == [bar]


def test_prune_deletes_bars_closed_before_the_cutoff(monkeypatch):
    monkeypatch.setattr(services, "PRUNE_CHUNK", 3)  # several chunks per symbol
    now = T0 + 86_400
    # 5 s bars: the one starting at T0 - 5 closes at T0 (= now - 1 day): kept; earlier go
    services.bars_store([make_bar(T0 - 5 * i) for i in range(1, 11)])
    services.bars_store([make_bar(T0 + 5 * i) for i in range(4)])
    # 1-minute bars: the one starting at T0 - 60 closes at T0: kept
    services.bars_store([make_bar(T0 - 60 * i, seconds=60) for i in range(1, 4)])
    services.bars_store([make_bar(T0 - 5 * i, symbol="MSFT") for i in range(1, 3)])
    assert services.bars_prune(now=now, days=1) == 9 + 2 + 1
    assert services.bars_span("AAPL", 5) == (T0 - 5, T0 + 15, 5)
    assert services.bars_span("AAPL", 60) == (T0 - 60, T0 - 60, 1)
    assert services.bars_span("MSFT", 5) == (T0 - 5, T0 - 5, 1)
    # a datetime works as now; nothing more to prune
    aware = datetime.fromtimestamp(now, tz=UTC)
    assert services.bars_prune(now=aware, days=1) == 0
    # one second later the bars that closed exactly at T0 go (AAPL 5 s and 60 s, MSFT)
    assert services.bars_prune(now=now + 1, days=1) == 3
    assert services.bars_span("AAPL", 5) == (T0, T0 + 15, 4)
    with pytest.raises(ValueError):
        services.bars_prune(now=datetime(2026, 1, 1), days=1)  # noqa: DTZ001


def test_prune_on_an_empty_store():
    assert services.bars_prune(now=T0, days=30) == 0


def test_recent_between_span_symbols():
    services.bars_store([make_bar(T0 + 5 * i, close=100 + i) for i in range(20)])
    services.bars_store([make_bar(T0 + 60 * i, seconds=60) for i in range(2)])
    services.bars_store([make_bar(T0, symbol="MSFT")])

    recent = services.bars_recent("AAPL", 5, count=3)
    assert [b.time for b in recent] == [T0 + 85, T0 + 90, T0 + 95]
    before = services.bars_recent("AAPL", 5, count=3, before=T0 + 20)
    assert [b.time for b in before] == [T0 + 5, T0 + 10, T0 + 15]
    assert [b.time for b in services.bars_recent("AAPL", 5, count=50, before=T0 + 10)] == [
        T0,
        T0 + 5,
    ]
    assert services.bars_recent("AAPL", 5, count=0) == []
    assert services.bars_recent("NOPE", 5, count=10) == []

    between = list(services.bars_between("AAPL", 5, T0 + 10, T0 + 30))
    assert [b.time for b in between] == [T0 + 10, T0 + 15, T0 + 20, T0 + 25]
    assert all(b.seconds == 5 and b.symbol == "AAPL" for b in between)
    assert list(services.bars_between("AAPL", 5, T0 + 30, T0 + 30)) == []

    assert services.bars_span("AAPL", 5) == (T0, T0 + 95, 20)
    assert services.bars_count("AAPL", 5, T0 + 10, T0 + 30) == 4
    assert services.bars_count("AAPL", 5, 0, 2**62) == 20
    assert services.bars_count("AAPL", 60, T0 + 1, 2**62) == 1
    assert services.bars_span("AAPL", 15) is None
    assert services.bars_symbols() == [
        ("AAPL", 5, T0, T0 + 95, 20),
        ("AAPL", 60, T0, T0 + 60, 2),
        ("MSFT", 5, T0, T0, 1),
    ]


def test_store_inside_a_rolled_back_transaction_leaves_nothing():
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        services.bars_store([make_bar(T0)])
        raise RuntimeError("the signal's write failed")
    assert StoredBar.objects.count() == 0
