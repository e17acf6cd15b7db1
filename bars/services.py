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
Row = tuple[int, float, float, float, float, float]  # a bar without its symbol and size
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


def _bar(symbol: str, seconds: int, row: Row) -> Bar:
    return Bar(symbol, row[0], seconds, row[1], row[2], row[3], row[4], row[5])


def _recent_rows(symbol: str, seconds: int, count: int, before: int | None) -> list[Row]:
    # Plain SQL along the (symbol, seconds, time) index: a chart asks for thousands of rows
    # and the ORM's per-row work was half of the answer's time.
    if count <= 0:
        return []
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {', '.join(quote(f) for f in _FIELDS)} FROM {quote(StoredBar._meta.db_table)} "
        f"WHERE {quote('symbol')} = %s AND {quote('seconds')} = %s"
        + (f" AND {quote('time')} < %s" if before is not None else "")
        + f" ORDER BY {quote('time')} DESC LIMIT %s"
    )
    params: list[int | str] = [symbol, seconds]
    if before is not None:
        params.append(before)
    params.append(count)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        newest: list[Row] = cursor.fetchall()
    newest.reverse()
    return newest


def bars_recent(symbol: str, seconds: int, *, count: int, before: int | None = None) -> list[Bar]:
    """The newest ``count`` stored bars starting before ``before`` (all if None), oldest
    first."""
    return [_bar(symbol, seconds, row) for row in _recent_rows(symbol, seconds, count, before)]


def bars_between(symbol: str, seconds: int, start: int, end: int) -> Iterator[Bar]:
    """Stored bars with ``start <= time < end``, oldest first, streamed in chunks."""
    rows = (
        StoredBar.objects.filter(symbol=symbol, seconds=seconds, time__gte=start, time__lt=end)
        .order_by("time")
        .values_list(*_FIELDS)
    )
    for row in rows.iterator(chunk_size=STREAM_CHUNK):
        yield _bar(symbol, seconds, row)


def bars_count(symbol: str, seconds: int, start: int, end: int) -> int:
    """How many bars are stored with ``start <= time < end`` (an index range count; cheaper
    than reading them)."""
    return StoredBar.objects.filter(
        symbol=symbol, seconds=seconds, time__gte=start, time__lt=end
    ).count()


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


# Averages a chart draws over its history (the dashboard's lines): MA<n> and EMA<n>. VWAP is
# drawn from live bars only: its value depends on the whole session, often far before the
# first bar a chart asks for.
CHART_LINE = re.compile(r"(?:MA|EMA)[1-9][0-9]{0,2}")
MAX_CHART_LINES = 8
EMA_WARM_FACTOR = 8  # bars before the first drawn one per EMA period: it settles to ~1e-7


def chart_line_names(raw: str) -> list[str]:
    """``"MA20,EMA9"`` → the names, or ValueError with a sentence."""
    if len(raw) > 100:
        raise ValueError(f"Ask for at most {MAX_CHART_LINES} lines, e.g. lines=MA20,EMA9.")
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if len(names) > MAX_CHART_LINES:
        raise ValueError(f"Ask for at most {MAX_CHART_LINES} lines.")
    for name in names:
        n = split_operand(name)[1] if CHART_LINE.fullmatch(name) else 0
        if n is None or not MIN_PERIOD <= n <= MAX_PERIOD:
            raise ValueError(
                f"{clip(name)!r} is not a line the chart draws: use MA<n> or EMA<n> "
                f"(n from {MIN_PERIOD} to {MAX_PERIOD}), separated by commas."
            )
    return names


def chart_history(
    symbol: str, seconds: int, *, count: int, before: int | None, lines: list[str]
) -> tuple[list[Row], dict[str, list[float | None]]]:
    """The newest ``count`` stored bars before ``before`` as ``(time, o, h, l, c, v)`` rows,
    oldest first, and each line's value at each of them (None while undefined), computed by
    the core's own indicators over the bars before the first too (an MA needs n - 1 of them,
    an EMA settles over EMA_WARM_FACTOR × n)."""
    warm = 0
    for name in lines:
        kind, n = split_operand(name)
        assert n is not None
        warm = max(warm, EMA_WARM_FACTOR * n if kind == "EMA" else n - 1)
    rows = _recent_rows(symbol, seconds, count + warm if lines else count, before)
    shown = len(rows) - min(count, len(rows))
    values: dict[str, list[float | None]] = {name: [] for name in lines}
    if not lines:
        return rows, values
    inputs = SymbolInputs(lines)
    step = inputs.step
    sources = [(values[name], inputs.sources[name]) for name in lines]
    for i, (time, o, h, lo, c, v) in enumerate(rows):
        # A price the core refuses (the worker never stores one): the lines skip that bar.
        with suppress(PriceError):
            step(time, seconds, o, h, lo, c, v)
        if i >= shown:
            for out, src in sources:
                num = src.num
                out.append(None if num is None else shown_value(num, src.den))
    return rows[shown:], values
