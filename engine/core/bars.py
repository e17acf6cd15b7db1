"""Bars, 5 s → 1 min aggregation and the CSV bar reader shared by replay and the csv feed."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain, repeat
from operator import add, itemgetter, sub
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TextIO, overload

from engine.core.indicators import FAST_LIMIT, price_problem, price_units
from engine.core.indicators import SCALE as PRICE_SCALE  # the core keeps whole 1e-8 units
from engine.core.inputs import clip

if TYPE_CHECKING:
    from _csv import Reader as CsvReader  # csv.reader()'s type; not importable at run time

MINUTE: Final = 60
# Bars start in [1970-01-01, 2100-01-01) UTC: every close time (start + a bar length of at
# most that span) then stays inside what datetime and format_time can print.
FIRST_BAR_TIME: Final = 0
END_BAR_TIME: Final = 4_102_444_800
TIME_RANGE_TEXT: Final = "bars must start between 1970-01-01 and 2099-12-31 (UTC)"


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar. ``time`` is the bar START in epoch seconds (UTC); ``seconds`` its length."""

    symbol: str
    time: int
    seconds: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def close_time(self) -> int:
        return self.time + self.seconds


class BucketAggregator:
    """Builds bars of ``seconds`` from shorter bars (IB's 5-second realtime bars, a 5-second
    file replayed as 1-minute bars), per symbol, in UTC-aligned buckets (DESIGN §7.2).

    Bars are bucketed by ``time - time % seconds``. A bucket closes when a bar reaching its
    end arrives (the :55 bar for 5-second bars into minutes) or when the first bar of a later
    bucket arrives; a partial bucket (a gap, the start of a file) makes a bar too. Open is the
    first bar's open, close the last bar's close, high/low the extremes, volume the sum. Bars
    at or before the last bar seen for that symbol are ignored (re-delivery after a
    reconnect).
    """

    __slots__ = ("seconds", "_open", "_last_time", "_last_closed")

    def __init__(self, seconds: int) -> None:
        if seconds <= 0:
            raise ValueError("a bucket must be at least one second long")
        self.seconds = seconds
        # symbol -> [bucket_start, open, high, low, close, volume]
        self._open: dict[str, list[float]] = {}
        self._last_time: dict[str, int] = {}
        self._last_closed: dict[str, int] = {}

    def feed(self, bar: Bar) -> list[Bar]:
        """Add one bar; returns the bars it closed (0, 1 or 2), oldest first."""
        symbol = bar.symbol
        if bar.time <= self._last_time.get(symbol, -(2**62)):
            return []
        size = self.seconds
        bucket = bar.time - bar.time % size
        if bucket <= self._last_closed.get(symbol, -(2**62)):
            return []
        self._last_time[symbol] = bar.time
        closed: list[Bar] = []
        current = self._open.get(symbol)
        if current is not None and current[0] != bucket:
            closed.append(self._close(symbol, current))
            current = None
        if current is None:
            self._open[symbol] = [bucket, bar.open, bar.high, bar.low, bar.close, bar.volume]
        else:
            if bar.high > current[2]:
                current[2] = bar.high
            if bar.low < current[3]:
                current[3] = bar.low
            current[4] = bar.close
            current[5] += bar.volume
        if bar.close_time >= bucket + size:
            closed.append(self._close(symbol, self._open[symbol]))
        return closed

    def flush(self, symbol: str | None = None, *, before: int | None = None) -> list[Bar]:
        """Close open buckets now (all symbols, or one), e.g. at shutdown, at the end of a
        file or when the feed has gone quiet. With ``before``, only buckets that ended at or
        before that epoch second are closed."""
        out: list[Bar] = []
        for sym in [symbol] if symbol is not None else sorted(self._open):
            current = self._open.get(sym)
            if current is None:
                continue
            if before is not None and current[0] + self.seconds > before:
                continue
            out.append(self._close(sym, current))
        return out

    def _close(self, symbol: str, current: list[float]) -> Bar:
        del self._open[symbol]
        start = int(current[0])
        self._last_closed[symbol] = start
        return Bar(
            symbol, start, self.seconds, current[1], current[2], current[3], current[4],
            current[5],
        )  # fmt: skip


class MinuteAggregator(BucketAggregator):
    """:class:`BucketAggregator` of 60-second bars (a 1-minute run from 5-second bars)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(MINUTE)


# ---------------------------------------------------------------------------------------------
# CSV bars

REQUIRED_COLUMNS: Final = ("time", "open", "high", "low", "close", "volume")


class BarFileError(ValueError):
    """A problem in a bar file; ``str()`` is one line naming the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


_EPOCH_DAY_CACHE: dict[str, int] = {}
_DIGITS: Final = frozenset("0123456789")


def time_problem(epoch: int, shown: object = None) -> str | None:
    """Why ``epoch`` can't be a bar start (a sentence fragment naming ``shown``, by default
    the time formatted), or None when it can."""
    if FIRST_BAR_TIME <= epoch < END_BAR_TIME:
        return None
    text = clip(str(shown if shown is not None else format_time(epoch)))
    return f"time {text!r} is out of range: {TIME_RANGE_TEXT}"


def parse_time(text: str) -> int:
    """Epoch seconds from ``text``: integer epoch seconds or ISO 8601 (naive means UTC),
    between 1970-01-01 and 2099-12-31.

    Raises ValueError with a readable reason. The common ``YYYY-MM-DDTHH:MM:SS[Z]`` form is
    parsed without building a datetime.
    """
    epoch = _parse_time(text)
    problem = time_problem(epoch, text.strip())
    if problem is not None:
        raise ValueError(problem)
    return epoch


def _parse_time(text: str) -> int:
    s = text.strip()
    if s and (s.isdigit() or (s[0] == "-" and s[1:].isdigit())) and s.isascii():
        if len(s.lstrip("-")) > 12:  # past 2100 either way; don't convert 5000 digits
            return END_BAR_TIME if s[0] != "-" else -END_BAR_TIME
        return int(s)
    n = len(s)
    if (n == 19 or (n == 20 and s[19] == "Z")) and s[10] in "T " and s[13] == ":" == s[16]:
        day = _EPOCH_DAY_CACHE.get(s[:10])
        if day is None:
            try:
                day = (date.fromisoformat(s[:10]).toordinal() - 719163) * 86400
            except ValueError:
                raise ValueError(f"unreadable time {text!r}") from None
            if len(_EPOCH_DAY_CACHE) > 10_000:
                _EPOCH_DAY_CACHE.clear()
            _EPOCH_DAY_CACHE[s[:10]] = day
        hh, mm, ss = s[11:13], s[14:16], s[17:19]
        if set(hh + mm + ss) <= _DIGITS:
            h, m, sec = int(hh), int(mm), int(ss)
            if h < 24 and m < 60 and sec < 60:
                return day + h * 3600 + m * 60 + sec
        raise ValueError(f"unreadable time {text!r}")
    try:
        value = float(s) if s.isascii() else math.nan
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value.is_integer():
            return int(value)
        if math.isfinite(value):
            raise ValueError(f"time {text!r} is not a whole number of epoch seconds")
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"unreadable time {text!r}; use ISO 8601 (2025-12-16T14:30:00Z) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.microsecond:
        raise ValueError(f"time {text!r} has fractions of a second; bars start on whole seconds")
    try:
        return int(parsed.timestamp())
    except (OverflowError, ValueError):  # 9999-12-31T23:59:59-01:00 and the like
        return END_BAR_TIME


_DAY_TEXT_CACHE: dict[int, str] = {}


def format_time(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for an epoch second."""
    seconds = epoch % 86400
    day = epoch - seconds
    prefix = _DAY_TEXT_CACHE.get(day)
    if prefix is None:
        if len(_DAY_TEXT_CACHE) > 10_000:
            _DAY_TEXT_CACHE.clear()
        prefix = _DAY_TEXT_CACHE[day] = datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%dT")
    hours, rest = divmod(seconds, 3600)
    return f"{prefix}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def default_symbol(path: str | Path) -> str:
    """Symbol for a file without a symbol column: the file name up to the first ``_``, ``-``
    or space, upper-cased (``aapl_5s.csv`` → ``AAPL``); ``SYMBOL`` if that is empty."""
    stem = Path(path).stem
    for sep in ("_", "-", " "):
        stem = stem.split(sep, 1)[0]
    return stem.strip().upper() or "SYMBOL"


class _Columns:
    __slots__ = ("time", "open", "high", "low", "close", "volume", "symbol", "width")

    def __init__(self, path: str | Path, header: list[str] | None) -> None:
        if header is None:
            raise BarFileError(path, 1, "the file is empty; expected a header line")
        names = [h.strip().lower() for h in header]
        if names and names[0].startswith("\ufeff"):
            names[0] = names[0][1:]
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise BarFileError(
                path,
                1,
                f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"the header needs {','.join(REQUIRED_COLUMNS)} (and optionally symbol)",
            )
        # Indexes of the columns in a row (every required one is present, checked above).
        self.time = names.index("time")
        self.open = names.index("open")
        self.high = names.index("high")
        self.low = names.index("low")
        self.close = names.index("close")
        self.volume = names.index("volume")
        self.symbol = names.index("symbol") if "symbol" in names else None
        self.width = max(
            self.time, self.open, self.high, self.low, self.close, self.volume, self.symbol or 0
        )


def _open_csv(path: str | Path) -> tuple[CsvReader, _Columns, TextIO]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed by caller
    except OSError as err:
        raise BarFileError(path, None, f"cannot open the file ({err.strerror or err})") from None
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as err:
        handle.close()
        raise BarFileError(path, 1, f"unreadable CSV ({err})") from None
    try:
        cols = _Columns(path, header)
    except BarFileError:
        handle.close()
        raise
    return reader, cols, handle


def infer_bar_seconds(path: str | Path, *, symbol: str | None = None) -> int | None:
    """Smallest gap between consecutive bars of the same symbol; None with fewer than 2 bars.

    Also checks the per-symbol order, so a second pass can trust it.
    """
    reader, cols, handle = _open_csv(path)
    fallback = default_symbol(path)
    wanted = symbol.strip().upper() if symbol else None
    last: dict[str, int] = {}
    best: int | None = None
    it, isym, width = cols.time, cols.symbol, cols.width
    try:
        for row in reader:
            if not row:
                continue
            if len(row) <= width:
                raise BarFileError(
                    path, reader.line_num, f"expected {width + 1} fields, found {len(row)}"
                )
            sym = row[isym].strip().upper() if isym is not None else fallback
            if wanted is not None and isym is not None and sym != wanted:
                continue
            try:
                t = parse_time(row[it])
            except ValueError as err:
                raise BarFileError(path, reader.line_num, str(err)) from None
            prev = last.get(sym)
            if prev is not None:
                gap = t - prev
                if gap <= 0:
                    raise BarFileError(path, reader.line_num, _order_problem(sym, t, prev))
                if best is None or gap < best:
                    best = gap
            last[sym] = t
    except csv.Error as err:
        raise BarFileError(path, reader.line_num, f"unreadable CSV ({err})") from None
    except UnicodeDecodeError:
        raise BarFileError(path, reader.line_num + 1, "the file is not UTF-8 text") from None
    finally:
        handle.close()
    return best


def _order_problem(symbol: str, t: int, prev: int) -> str:
    return (
        f"bars out of order: {symbol} bar at {format_time(t)} is not after the previous "
        f"{symbol} bar at {format_time(prev)}; sort the file by time"
    )


def _row_problem(row: list[str], cols: _Columns) -> str:
    """Find which field of a row that failed the fast path is wrong."""
    try:
        parse_time(row[cols.time])
    except ValueError as err:
        return str(err)
    for name in ("open", "high", "low", "close", "volume"):
        raw = row[getattr(cols, name)]
        try:
            value = float(raw)
        except ValueError:
            return f"column {name}: {raw.strip()!r} is not a number"
        if not math.isfinite(value):
            return f"column {name}: {raw.strip()!r} is not a finite number"
        if name != "volume" and value <= 0:
            return f"column {name}: price {raw.strip()} must be positive"
        if name != "volume" and price_problem(value) is not None:
            return (
                f"column {name}: price {raw.strip()} is finer than 0.00000001; "
                "prices finer than 0.00000001 (8 decimals) are not supported"
            )
        if name == "volume" and value < 0:
            return f"column volume: {raw.strip()} is negative"
    return "unreadable row"


def exact_price(price: float) -> float | None:
    """``price`` as the float of its exact 8-decimal value (190.07000000000002 → 190.07), or
    None when it has digits below 1e-8 (1.000000001). See ``indicators.price_units``."""
    units = price_units(price)
    return None if units is None else units / PRICE_SCALE


_BAR_SETTERS = tuple(
    Bar.__dict__[name].__set__
    for name in ("symbol", "time", "seconds", "open", "high", "low", "close", "volume")
)


def _bar_factory() -> Callable[[str, int, int, float, float, float, float, float], Bar]:
    """A Bar constructor about twice as fast as the dataclass one, for bulk reading.

    It fills the same slots the generated ``__init__`` fills (through the slot descriptors,
    since the frozen ``__setattr__`` refuses); the result is an ordinary, equal, frozen Bar.
    """
    new = object.__new__
    s_sym, s_time, s_sec, s_open, s_high, s_low, s_close, s_vol = _BAR_SETTERS

    def make(
        symbol: str, time: int, seconds: int, o: float, h: float, lo: float, c: float, v: float
    ) -> Bar:
        bar = new(Bar)
        s_sym(bar, symbol)
        s_time(bar, time)
        s_sec(bar, seconds)
        s_open(bar, o)
        s_high(bar, h)
        s_low(bar, lo)
        s_close(bar, c)
        s_vol(bar, v)
        return bar

    return make


SymbolCheck = Callable[[str], str]
Progress = Callable[[int, int], None]
"""``progress(bytes_read, total_bytes)``, called now and then while a file is read."""
BarRow = tuple[str, int, float, float, float, float, float]
"""A bar as ``(symbol, time, open, high, low, close, volume)``, from :func:`read_csv_rows`."""


def iter_csv_bars(
    path: str | Path,
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    check_symbol: SymbolCheck | None = None,
) -> Iterator[Bar]:
    """Yield the bars of a CSV file in file order (DESIGN §5 format).

    Header ``time,open,high,low,close,volume`` (any order, case-insensitive) plus an optional
    ``symbol`` column. ``time`` is the bar start: epoch seconds or ISO 8601 (naive = UTC).
    With a symbol column, ``symbol`` keeps only that symbol's rows; without one it names the
    symbol (default: :func:`default_symbol`). ``bar_seconds`` defaults to the smallest gap
    between consecutive bars of a symbol (found in a first pass over the file; 60 when no
    symbol has two bars).

    Raises :class:`BarFileError` (file, line, problem) for a missing column, an unparsable
    number or time, bars out of order per symbol, or bars that overlap ``bar_seconds``.
    ``check_symbol`` (the app's symbol validator) sees each symbol once: it returns the
    symbol to use or raises ValueError with a sentence, which names the line it came from.
    Memory use does not grow with the number of bars.
    """
    if bar_seconds is None:
        bar_seconds = infer_bar_seconds(path, symbol=symbol) or MINUTE
    elif bar_seconds <= 0:
        raise BarFileError(path, None, f"bar length must be positive, got {bar_seconds}")
    return read_csv_bars(
        path, symbol=symbol, bar_seconds=bar_seconds, min_gap=None, check_symbol=check_symbol
    )


def read_csv_bars(
    path: str | Path,
    *,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None = None,
    progress: Progress | None = None,
) -> Iterator[Bar]:
    """One pass over a bar file: :func:`iter_csv_bars` without the inference pass.

    With ``min_gap`` (a one-item list), bars only need to be in order per symbol and
    ``min_gap[0]`` is kept at the smallest gap seen so far (for callers that infer the bar
    length in the same pass and stamp ``bar_seconds`` later); otherwise bars closer than
    ``bar_seconds`` are an error.
    """
    return _read_csv(
        path, symbol, bar_seconds, min_gap, check_symbol, as_tuples=False, progress=progress
    )


def read_csv_rows(
    path: str | Path,
    *,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None = None,
    progress: Progress | None = None,
) -> Iterator[BarRow]:
    """:func:`read_csv_bars` yielding ``(symbol, time, open, high, low, close, volume)``
    tuples instead of Bars (cheaper, for bulk replay). Same checks and errors.

    ``progress(bytes_read, total_bytes)`` is called after every block of rows (about 256 kB)
    and once at the end."""
    return _read_csv(
        path, symbol, bar_seconds, min_gap, check_symbol, as_tuples=True, progress=progress
    )


class Columns:
    """A block of one symbol's rows from the fast reader, as columns (lists of equal
    length, times in order). Iterating it gives the rows, as ``read_csv_rows`` does; a bulk
    consumer may take the columns whole (the backtest's outcome windows)."""

    __slots__ = ("symbol", "times", "opens", "highs", "lows", "closes", "volumes")

    def __init__(
        self, symbol: str, times: list[int], opens: list[float], highs: list[float],
        lows: list[float], closes: list[float], volumes: list[float],
    ) -> None:  # fmt: skip
        self.symbol = symbol
        self.times = times
        self.opens = opens
        self.highs = highs
        self.lows = lows
        self.closes = closes
        self.volumes = volumes

    def __iter__(self) -> Iterator[BarRow]:
        return zip(
            repeat(self.symbol), self.times, self.opens, self.highs, self.lows, self.closes,
            self.volumes,
        )  # fmt: skip


def read_csv_blocks(
    path: str | Path,
    *,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None = None,
    progress: Progress | None = None,
) -> Iterator[Iterable[BarRow]]:
    """:func:`read_csv_rows` as blocks of rows, in file order: :class:`Columns` where the
    fast path read the block, other iterables of rows where the careful one did. Each block
    is read when the one before it has been taken (iterated to its end)."""
    return _read_blocks(  # type: ignore[return-value]  # as_tuples: rows, not Bars
        path, symbol, bar_seconds, min_gap, check_symbol, True, progress
    )


@overload
def _read_csv(
    path: str | Path,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None,
    *,
    as_tuples: Literal[False],
    progress: Progress | None = None,
) -> Iterator[Bar]: ...


@overload
def _read_csv(
    path: str | Path,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None,
    *,
    as_tuples: Literal[True],
    progress: Progress | None = None,
) -> Iterator[BarRow]: ...


def _read_csv(
    path: str | Path,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None,
    *,
    as_tuples: bool,
    progress: Progress | None = None,
) -> Iterator[Bar | BarRow]:
    # The rows of each block come straight from its iterator (a zip of columns on the fast
    # path), not through a generator frame resumed per row.
    return chain.from_iterable(
        _read_blocks(path, symbol, bar_seconds, min_gap, check_symbol, as_tuples, progress)
    )


def _read_blocks(
    path: str | Path,
    symbol: str | None,
    bar_seconds: int,
    min_gap: list[int] | None,
    check_symbol: SymbolCheck | None,
    as_tuples: bool,
    progress: Progress | None,
) -> Iterator[Iterable[Bar | BarRow]]:
    """:func:`_read_csv`'s rows as blocks, each read (and checked) when the one before it
    has been taken."""
    reader, cols, handle = _open_csv(path)
    if progress is not None:
        total = _file_size(handle)
        where = handle.buffer.tell

        def report() -> None:
            progress(min(where(), total), total)
    else:
        report = _nothing
    state = _ReadState(path, symbol, bar_seconds, min_gap, check_symbol, cols, as_tuples)
    line = reader.line_num  # lines read so far (the header)
    fast = _FastBlocks(state) if FAST_BLOCK_CHARS > 0 else None
    try:
        while fast is not None:
            try:
                lines = handle.readlines(FAST_BLOCK_CHARS)
            except UnicodeDecodeError:
                raise BarFileError(path, line + 1, "the file is not UTF-8 text") from None
            if not lines:
                report()
                return
            text = "".join(lines)
            if '"' in text:
                # A quoted field may span lines (and blocks): csv.reader for the rest.
                yield _careful(state, _reporting(chain(lines, handle), report), line)
                report()
                return
            block = fast.block(lines, text)
            yield _careful(state, lines, line) if block is None else block
            line += len(lines)
            report()
        yield _careful(state, _reporting(handle, report), line)
        report()
    finally:
        handle.close()


def _nothing() -> None:
    return None


def _file_size(handle: TextIO) -> int:
    try:
        return os.fstat(handle.fileno()).st_size
    except (OSError, ValueError):
        return 0


def _reporting(lines: Iterable[str], report: Callable[[], None]) -> Iterable[str]:
    """``lines``, calling ``report()`` every 4,096 of them (the careful path's progress)."""
    return lines if report is _nothing else _reported(lines, report)


def _reported(lines: Iterable[str], report: Callable[[], None]) -> Iterator[str]:
    for number, text in enumerate(lines, 1):
        yield text
        if not number & 4095:
            report()


# Characters read per block by the fast path (about 5,000 rows of 5-second bars).
FAST_BLOCK_CHARS: int = 1 << 18

# A block's time column, joined by newlines: all ISO (2025-12-16T09:30:00, T or space, an
# optional Z) or all ASCII epoch seconds (at most 10 digits). ASCII digits only: "²" is not 2.
_ISO_COLUMN = re.compile(r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}Z?\n)*")
# The checks without a regular expression (the ISO one decides when a column has several
# shapes): every ASCII digit (and, for prices, the point) becomes "0", so the text's shape
# can be compared or counted by C string methods.
_ZERO_DIGITS = str.maketrans("123456789", "000000000")
_ZERO_PRICE = str.maketrans("123456789.", "0000000000")
_ISO_SHAPES = frozenset(f"0000-00-00{sep}00:00:00{zone}\n" for sep in "T " for zone in ("", "Z"))


def _all_iso(joined: str, column: list[str]) -> bool:
    """Whether every line of ``joined`` (``column`` joined by newlines, one more at the
    end) is ``YYYY-MM-DD[T ]HH:MM:SS[Z]`` in ASCII digits: :data:`_ISO_COLUMN`."""
    shape = joined.translate(_ZERO_DIGITS)
    line = shape[: len(column[0]) + 1]
    if line in _ISO_SHAPES and shape == line * len(column):
        return True
    return _ISO_COLUMN.fullmatch(joined) is not None  # mixed shapes (or not ISO)


def _all_digits(joined: str, column: list[str], longest: int, table: dict[int, int]) -> bool:
    """Whether every line of ``joined`` (``column`` joined by newlines, one more at the
    end) is 1 to ``longest`` characters that ``table`` turns into "0": ASCII digits (epoch
    seconds, at most 10), or ASCII digits and points (prices, at most 9 characters)."""
    shape = joined.translate(table)
    if shape.count("0") + len(column) != len(shape):
        return False  # another character than those and the newlines
    # no empty line, none longer than ``longest``
    return shape[0] != "\n" and "\n\n" not in shape and "0" * (longest + 1) not in shape


_MAX_FAST_LINE = 1000  # longer lines take the careful path (csv's field size limit et al.)


class _ReadState:
    """What the reader knows between blocks: per-symbol last bar start, smallest gap, the
    symbols ``check_symbol`` has answered for."""

    __slots__ = (
        "path", "wanted", "fallback", "bar_seconds", "min_gap", "limit", "check_symbol",
        "cols", "as_tuples", "last", "best", "names", "make_bar",
    )  # fmt: skip

    def __init__(
        self,
        path: str | Path,
        symbol: str | None,
        bar_seconds: int,
        min_gap: list[int] | None,
        check_symbol: SymbolCheck | None,
        cols: _Columns,
        as_tuples: bool,
    ) -> None:
        self.path = path
        self.wanted = symbol.strip().upper() if symbol else None
        self.fallback = self.wanted or default_symbol(path)
        self.bar_seconds = bar_seconds
        self.min_gap = min_gap
        self.limit = 1 if min_gap is not None else bar_seconds
        self.check_symbol = check_symbol
        self.cols = cols
        self.as_tuples = as_tuples
        self.last: dict[str, int] = {}
        self.best = 2**62
        self.names: dict[str, str] = {}
        self.make_bar = _bar_factory()


class _FastBlocks:
    """The fast path: a block of well-formed rows of one symbol read column by column with
    C-level builtins (``str.split``, slicing, ``map(float, ...)``, ``min``). Any doubt about
    a block (a quote, a NUL, a field the quick checks can't clear, a row out of order, a
    symbol not yet checked, several symbols) returns None and the block is read row by row by
    :func:`_careful`, which finds the problem and words it; so the two paths accept the same
    rows, give the same values and the same messages."""

    __slots__ = ("state", "day_cache", "sod_cache", "date_part", "sod_part")

    def __init__(self, state: _ReadState) -> None:
        self.state = state
        self.day_cache: dict[str, int] = {}
        self.sod_cache: dict[str, int] = {}
        self.date_part = itemgetter(slice(0, 10))
        self.sod_part = itemgetter(slice(11, 19))

    def block(self, lines: list[str], text: str) -> Iterable[Bar | BarRow] | None:
        """The block's bars (``text``: its lines joined), or None to read it row by row."""
        state = self.state
        cols = state.cols
        if "\0" in text or max(map(len, lines)) > _MAX_FAST_LINE:
            return None
        if "\r" in text:
            if text.count("\r") != text.count("\r\n"):
                return None
            text = text.replace("\r\n", "\n")
        if text.endswith("\n"):
            text = text[:-1]
        n = len(lines)
        commas = text.count(",")
        width = commas // n + 1  # fields per row, when every row has as many
        if width <= cols.width or width * n - n != commas:
            return None
        if len(set(map(str.count, lines, repeat(",")))) != 1:
            return None
        fields = text.replace("\n", ",").split(",")
        if len(fields) != n * width:
            return None
        # The symbol: one per block, already checked.
        if cols.symbol is not None:
            symbols = set(fields[cols.symbol :: width])
            if len(symbols) != 1:
                return None
            sym = symbols.pop().strip().upper()
            if not sym:
                return None
            if state.wanted is not None and sym != state.wanted:
                return iter(())  # another symbol's rows: skipped unread, as row by row
        else:
            sym = state.fallback
        if state.check_symbol is None:
            name = sym
        else:
            known = state.names.get(sym)
            if known is None:
                return None
            name = known
        times = self._times(fields[cols.time :: width])
        if times is None:
            return None
        # Prices of at most 9 characters, digits and points (no exponent, no nan or inf) have
        # at most 8 decimals and are finite; float() still reads them (or refuses "1.2.3").
        po, ph = fields[cols.open :: width], fields[cols.high :: width]
        pl, pc = fields[cols.low :: width], fields[cols.close :: width]
        prices = po + ph + pl + pc
        if not _all_digits("\n".join(prices) + "\n", prices, 9, _ZERO_PRICE):
            return None
        try:
            opens = list(map(float, po))
            highs = list(map(float, ph))
            lows = list(map(float, pl))
            closes = list(map(float, pc))
            volumes = list(map(float, fields[cols.volume :: width]))
        except ValueError:
            return None
        # NaN fails every comparison; an infinity (or an overflow) makes the sum infinite.
        if not (
            min(opens) > 0 and min(highs) > 0 and min(lows) > 0 and min(closes) > 0
            and min(volumes) >= 0 and sum(volumes) < math.inf
        ):  # fmt: skip
            return None
        # Order and gaps.
        prev = state.last.get(sym)
        gaps = list(map(sub, times[1:], times[:-1]))
        if prev is not None:
            gaps.append(times[0] - prev)
        if gaps:
            smallest = min(gaps)
            if smallest < state.limit:
                return None
            if smallest < state.best:
                state.best = smallest
                if state.min_gap is not None:
                    state.min_gap[0] = smallest
        state.last[sym] = times[-1]
        if state.as_tuples:
            return Columns(name, times, opens, highs, lows, closes, volumes)
        return map(
            state.make_bar, repeat(name), times, repeat(state.bar_seconds), opens, highs, lows,
            closes, volumes,
        )  # fmt: skip

    def _times(self, column: list[str]) -> list[int] | None:
        """Bar starts of a block's time column when all are ISO ``YYYY-MM-DDTHH:MM:SS[Z]``
        (T or space) or all ASCII epoch seconds, in range; otherwise None."""
        joined = "\n".join(column) + "\n"
        if _all_iso(joined, column):
            days = self.day_cache
            dates = list(map(self.date_part, column))
            for text in set(dates).difference(days):
                try:
                    day = (date.fromisoformat(text).toordinal() - 719163) * 86400
                except ValueError:
                    return None
                if len(days) > 10_000:
                    days.clear()
                days[text] = day
            sods = self.sod_cache
            parts = list(map(self.sod_part, column))
            for text in set(parts).difference(sods):
                h, m, s = int(text[:2]), int(text[3:5]), int(text[6:])
                if h >= 24 or m >= 60 or s >= 60:
                    return None
                sods[text] = h * 3600 + m * 60 + s
            try:
                times = list(map(add, map(days.__getitem__, dates), map(sods.__getitem__, parts)))
            except KeyError:  # the day cache was cleared while filling it
                return None
        elif _all_digits(joined, column, 10, _ZERO_DIGITS):
            times = list(map(int, column))
        else:
            return None
        if min(times) < FIRST_BAR_TIME or max(times) >= END_BAR_TIME:
            return None
        return times


def _careful(state: _ReadState, lines: Iterable[str], base: int) -> Iterator[Bar | BarRow]:
    """The row-by-row reader (csv.reader): every check, every message. ``base``: lines of
    the file before ``lines``."""
    path = state.path
    cols = state.cols
    reader = csv.reader(lines)
    wanted = state.wanted
    fallback = state.fallback
    bar_seconds = state.bar_seconds
    min_gap = state.min_gap
    check_symbol = state.check_symbol
    as_tuples = state.as_tuples
    pick = itemgetter(cols.time, cols.open, cols.high, cols.low, cols.close, cols.volume)
    isym, width = cols.symbol, cols.width
    last = state.last
    limit = state.limit
    best = state.best
    inf = math.inf
    scale = float(PRICE_SCALE)
    fast_limit = FAST_LIMIT  # above: repr decides (see price_units)
    last_sym: str | None = None
    name = ""  # last_sym as check_symbol returned it
    names = state.names
    last_t = 0
    make_bar = state.make_bar
    minute_prefix, minute_base = "", 0
    prev: int | None  # the symbol's previous bar start (a declaration: no code runs)
    # Hot loop: one try for the whole row; diagnose the field only when something fails.
    try:
        for row in reader:
            if not row:
                continue
            if isym is not None:
                sym = row[isym].strip().upper() if len(row) > isym else ""
                if wanted is not None and sym != wanted:
                    continue
            else:
                sym = fallback
            try:
                raw_t, raw_o, raw_h, raw_l, raw_c, raw_v = pick(row)
                if len(raw_t) == 19 and raw_t[:17] == minute_prefix:
                    # Same minute as the previous row (the usual case for 5 s bars).
                    sec = raw_t[17:]
                    if not (sec.isdigit() and sec < "60"):
                        raise ValueError
                    t = minute_base + int(sec)
                elif raw_t.isdigit() and raw_t.isascii() and len(raw_t) < 11:
                    t = int(raw_t)
                    if t >= END_BAR_TIME:
                        raise ValueError
                else:
                    t = parse_time(raw_t)
                    if len(raw_t) == 19 and raw_t[16] == ":":
                        minute_prefix, minute_base = raw_t[:17], t - t % 60
                o = float(raw_o)
                h = float(raw_h)
                lo = float(raw_l)
                c = float(raw_c)
                v = float(raw_v)
            except (ValueError, IndexError):
                if len(row) <= width:
                    raise BarFileError(
                        path,
                        base + reader.line_num,
                        f"expected {width + 1} fields, found {len(row)}",
                    ) from None
                raise BarFileError(path, base + reader.line_num, _row_problem(row, cols)) from None
            # NaN fails every comparison; an infinity makes the sum infinite.
            if not (o > 0 and h > 0 and lo > 0 and c > 0 and v >= 0 and o + h + lo + c + v < inf):
                raise BarFileError(path, base + reader.line_num, _row_problem(row, cols))
            # The core keeps prices as whole 1e-8 units: refuse finer ones, never round them
            # (float noise aside: see exact_price).
            # Text of at most 9 characters without an exponent has at most 8 decimals.
            if (
                len(raw_o) > 9
                or len(raw_h) > 9
                or len(raw_l) > 9
                or len(raw_c) > 9
                or "e" in (text := raw_o + raw_h + raw_l + raw_c)
                or "E" in text
            ) and (
                round(o * scale) / scale != o
                or round(h * scale) / scale != h
                or round(lo * scale) / scale != lo
                or round(c * scale) / scale != c
                or o + h + lo + c >= fast_limit
            ):
                mo, mh, ml, mc = map(exact_price, (o, h, lo, c))
                if mo is None or mh is None or ml is None or mc is None:
                    raise BarFileError(path, base + reader.line_num, _row_problem(row, cols))
                o, h, lo, c = mo, mh, ml, mc
            if sym == last_sym:
                prev = last_t
            else:
                if last_sym is not None:
                    last[last_sym] = last_t
                prev = last.get(sym)
                last_sym = sym
                if check_symbol is None or not sym:
                    name = sym
                elif (known := names.get(sym)) is not None:
                    name = known
                else:
                    try:
                        name = names[sym] = check_symbol(sym)
                    except ValueError as err:
                        where = "column symbol" if isym is not None else "symbol from the file name"
                        raise BarFileError(
                            path, base + reader.line_num, f"{where}: {err}"
                        ) from None
            if prev is not None:
                gap = t - prev
                if gap < limit:
                    if gap <= 0:
                        raise BarFileError(
                            path, base + reader.line_num, _order_problem(sym, t, prev)
                        )
                    raise BarFileError(
                        path,
                        base + reader.line_num,
                        f"{sym} bar at {format_time(t)} starts {gap} s after the previous "
                        f"one, but bars are {bar_seconds} s long; check --bar-seconds",
                    )
                if gap < best:
                    best = state.best = gap
                    if min_gap is not None:
                        min_gap[0] = gap
            elif not sym:
                raise BarFileError(path, base + reader.line_num, "empty symbol")
            last_t = t
            if as_tuples:
                yield name, t, o, h, lo, c, v
            else:
                yield make_bar(name, t, bar_seconds, o, h, lo, c, v)
    except csv.Error as err:
        raise BarFileError(path, base + reader.line_num, f"unreadable CSV ({err})") from None
    except UnicodeDecodeError:
        raise BarFileError(path, base + reader.line_num + 1, "the file is not UTF-8 text") from None
    if last_sym is not None:
        last[last_sym] = last_t
