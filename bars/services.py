"""The bar store's only reader and writer (DESIGN §7.3): store, prune, and range reads."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from django.db import connection

from bars.models import StoredBar
from engine.core.bars import Bar
from engine.core.indicators import PriceError
from engine.core.inputs import clip
from engine.core.machine import SymbolInputs, shown_value
from engine.core.rules import MAX_PERIOD, MIN_PERIOD, split_operand
from signals.models import Signal

# Rows one prune statement deletes: small enough that a 30-day backlog never holds SQLite's
# write lock for long (each chunk commits on its own outside a transaction).
PRUNE_CHUNK: Final = 10_000
# Rows per fetch when streaming a range to a backtest.
STREAM_CHUNK: Final = 2_000
# Rows per INSERT batch: each row is 8 parameters, well under SQLite's 32,766 limit.
STORE_BATCH: Final = 2_000

_FIELDS: Final = ("time", "open", "high", "low", "close", "volume")
_INSERT: str | None = None


def _insert_sql() -> str:
    # Plain INSERT … ON CONFLICT DO NOTHING (SQLite ≥ 3.24 and PostgreSQL): the cheapest way
    # to skip re-delivered bars, and unlike bulk_create(ignore_conflicts=True) its rowcount
    # says how many were new.
    global _INSERT
    if _INSERT is None:
        quote = connection.ops.quote_name
        columns = ("symbol", "seconds", *_FIELDS)
        _INSERT = (
            f"INSERT INTO {quote(StoredBar._meta.db_table)} "
            f"({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT DO NOTHING"
        )
    return _INSERT


def bars_store(bars: Iterable[Bar]) -> int:
    """Store closed bars, skipping any already stored (same symbol, size and start); returns
    how many were new. Safe inside the caller's transaction (the worker stores a bar in the
    transaction of its signals)."""
    rows = [(b.symbol, b.seconds, b.time, b.open, b.high, b.low, b.close, b.volume) for b in bars]
    if not rows:
        return 0
    sql = _insert_sql()
    stored = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), STORE_BATCH):
            batch = rows[start : start + STORE_BATCH]
            if len(batch) == 1:
                cursor.execute(sql, batch[0])
            else:
                cursor.executemany(sql, batch)
            stored += max(cursor.rowcount, 0)
    return stored


def bars_keys() -> Iterator[tuple[str, int]]:
    """Each stored (symbol, seconds), in order, by index seeks (a loose index scan) rather
    than a DISTINCT over millions of rows."""
    rows = StoredBar.objects.order_by("symbol", "seconds").values_list("symbol", "seconds")
    key = rows.first()
    while key is not None:
        yield key
        symbol, seconds = key
        key = (
            rows.filter(symbol=symbol, seconds__gt=seconds).first()
            or rows.filter(symbol__gt=symbol).first()
        )


def _sizes(symbol: str) -> Iterator[int]:
    """The stored bar sizes of ``symbol``, smallest first, by index seeks."""
    rows = StoredBar.objects.filter(symbol=symbol).order_by("seconds")
    size = rows.values_list("seconds", flat=True).first()
    while size is not None:
        yield size
        size = rows.filter(seconds__gt=size).values_list("seconds", flat=True).first()


def _epoch(now: datetime | int) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return int(now.timestamp())
    return int(now)


def bars_prune(*, now: datetime | int, days: int) -> int:
    """Delete the bars that closed before ``now - days``; returns how many. Works per
    (symbol, seconds) as index range deletes of at most PRUNE_CHUNK rows each."""
    if days < 0:
        raise ValueError("days must not be negative")
    cutoff = _epoch(now) - days * 86_400
    deleted = 0
    for symbol, seconds in list(bars_keys()):
        # close = time + seconds < cutoff  <=>  time < cutoff - seconds
        limit = cutoff - seconds
        rows = StoredBar.objects.filter(symbol=symbol, seconds=seconds)
        while True:
            edge = (
                rows.filter(time__lt=limit)
                .order_by("time")
                .values_list("time", flat=True)[PRUNE_CHUNK - 1 : PRUNE_CHUNK]
            )
            last = next(iter(edge), None)
            upper = limit if last is None else last + 1
            count, _ = rows.filter(time__lt=upper).delete()
            deleted += count
            if last is None:
                break
    return deleted


def _bar(symbol: str, seconds: int, row: tuple[int, float, float, float, float, float]) -> Bar:
    return Bar(symbol, row[0], seconds, row[1], row[2], row[3], row[4], row[5])


def bars_recent(symbol: str, seconds: int, *, count: int, before: int | None = None) -> list[Bar]:
    """The newest ``count`` stored bars starting before ``before`` (all if None), oldest
    first."""
    if count <= 0:
        return []
    rows = StoredBar.objects.filter(symbol=symbol, seconds=seconds)
    if before is not None:
        rows = rows.filter(time__lt=before)
    newest = list(rows.order_by("-time").values_list(*_FIELDS)[:count])
    newest.reverse()
    return [_bar(symbol, seconds, row) for row in newest]


def bars_between(symbol: str, seconds: int, start: int, end: int) -> Iterator[Bar]:
    """Stored bars with ``start <= time < end``, oldest first, streamed in chunks."""
    rows = (
        StoredBar.objects.filter(symbol=symbol, seconds=seconds, time__gte=start, time__lt=end)
        .order_by("time")
        .values_list(*_FIELDS)
    )
    for row in rows.iterator(chunk_size=STREAM_CHUNK):
        yield _bar(symbol, seconds, row)


def bars_span(symbol: str, seconds: int) -> tuple[int, int, int] | None:
    """(first start, last start, count) of the stored bars of one symbol and size, or None."""
    rows = StoredBar.objects.filter(symbol=symbol, seconds=seconds).values_list("time", flat=True)
    first = rows.order_by("time").first()
    if first is None:
        return None
    last = rows.order_by("-time").first()
    assert last is not None
    return first, last, rows.count()


def bars_symbols() -> list[tuple[str, int, int, int, int]]:
    """(symbol, seconds, first start, last start, count) for each stored symbol and size."""
    out: list[tuple[str, int, int, int, int]] = []
    for symbol, seconds in list(bars_keys()):
        span = bars_span(symbol, seconds)
        if span is not None:
            out.append((symbol, seconds, *span))
    return out


def chart_signals(symbol: str, start: int, end: int, *, limit: int) -> list[dict]:
    """The signals of ``symbol`` whose bar closed in ``(start, end]`` (epoch seconds), for
    chart markers: ``{id, time (close, epoch), price, side, rule_id, rule_name}``, oldest
    first, at most ``limit`` (the newest)."""
    rows = (
        Signal.objects.filter(
            symbol=symbol,
            time__gt=datetime.fromtimestamp(start, tz=UTC),
            time__lte=datetime.fromtimestamp(end, tz=UTC),
        )
        .order_by("-time", "-id")
        .values_list("id", "time", "price", "side", "rule_id", "rule_name")[:limit]
    )
    out = [
        {
            "id": pk,
            "time": int(time.timestamp()),
            "price": price,
            "side": side,
            "rule_id": rule_id,
            "rule_name": rule_name,
        }
        for pk, time, price, side, rule_id, rule_name in rows
    ]
    out.reverse()
    return out


# The chart around a signal: this many bars before and after it, at least this long.
AROUND_BARS = 360
AROUND_MIN_SECONDS = 30 * 60


@dataclass(frozen=True, slots=True)
class Around:
    seconds: int
    start: int
    end: int
    bars: list[Bar]


def bars_around(symbol: str, close: int, *, prefer: int) -> Around | None:
    """Stored bars around the close time ``close`` of a signal: of size ``prefer`` if any are
    stored in the window, else of another stored size (smallest first); None when the store
    has none (older than the retention, or never stored)."""
    sizes = [prefer, *(s for s in _sizes(symbol) if s != prefer)]
    for seconds in sizes:
        reach = max(AROUND_MIN_SECONDS, AROUND_BARS * seconds)
        start, end = close - reach, close + reach
        bars = list(bars_between(symbol, seconds, start, end))
        if bars:
            return Around(seconds, start, end, bars)
    return None


# Averages a chart draws over its history (the dashboard's lines): MA<n>, EMA<n>, VWAP.
CHART_LINE = re.compile(r"(?:MA|EMA)[1-9][0-9]{0,2}|VWAP")
MAX_CHART_LINES = 8
WARM_FACTOR = 8  # bars before the first drawn one per period: an EMA settles to ~1e-7


def chart_line_names(raw: str) -> list[str]:
    """``"MA20,EMA9,VWAP"`` → the names, or ValueError with a sentence."""
    if len(raw) > 100:
        raise ValueError(f"Ask for at most {MAX_CHART_LINES} lines, e.g. lines=MA20,EMA9,VWAP.")
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if len(names) > MAX_CHART_LINES:
        raise ValueError(f"Ask for at most {MAX_CHART_LINES} lines.")
    for name in names:
        n = split_operand(name)[1] if CHART_LINE.fullmatch(name) else 0
        if n is not None and not MIN_PERIOD <= n <= MAX_PERIOD:
            raise ValueError(
                f"{clip(name)!r} is not a line the chart draws: use MA<n> or EMA<n> "
                f"(n from {MIN_PERIOD} to {MAX_PERIOD}) or VWAP, separated by commas."
            )
    return names


def bars_with_lines(
    symbol: str, seconds: int, *, count: int, before: int | None, lines: list[str]
) -> tuple[list[Bar], dict[str, list[float | None]]]:
    """:func:`bars_recent` plus each line's value at each of those bars, computed by the
    core's own indicators over extra bars before the first (so an EMA has settled)."""
    if not lines:
        return bars_recent(symbol, seconds, count=count, before=before), {}
    warm = max((WARM_FACTOR * (split_operand(n)[1] or 0) for n in lines if n != "VWAP"), default=0)
    bars = bars_recent(symbol, seconds, count=count + warm, before=before)
    inputs = SymbolInputs(lines)
    values: dict[str, list[float | None]] = {name: [] for name in lines}
    shown = len(bars) - min(count, len(bars))
    for i, bar in enumerate(bars):
        # A price the core refuses (the worker never stores one): the lines skip that bar.
        with suppress(PriceError):
            inputs.step(bar.time, seconds, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if i < shown:
            continue
        for name in lines:
            src = inputs.sources[name]
            values[name].append(None if src.num is None else shown_value(src.num, src.den))
    return bars[shown:], values
