"""Bars, 5 s → 1 min aggregation and the CSV bar reader shared by replay and the csv feed."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

MINUTE: Final = 60


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


class MinuteAggregator:
    """Builds 60-second bars from shorter bars (IB's 5-second realtime bars), per symbol.

    Bars are bucketed by the start of their minute. A minute closes when a bar reaching its
    end arrives (the :55 bar for 5-second bars) or when the first bar of a later minute
    arrives. Open is the first bar's open, close the last bar's close, high/low the extremes,
    volume the sum. Bars at or before the last bar seen for that symbol are ignored
    (re-delivery after a reconnect).
    """

    __slots__ = ("_open", "_last_time", "_last_closed")

    def __init__(self) -> None:
        # symbol -> [minute_start, open, high, low, close, volume]
        self._open: dict[str, list[float]] = {}
        self._last_time: dict[str, int] = {}
        self._last_closed: dict[str, int] = {}

    def feed(self, bar: Bar) -> list[Bar]:
        """Add one bar; returns the minute bars it closed (0, 1 or 2), oldest first."""
        symbol = bar.symbol
        if bar.time <= self._last_time.get(symbol, -(2**62)):
            return []
        minute = bar.time - bar.time % MINUTE
        if minute <= self._last_closed.get(symbol, -(2**62)):
            return []
        self._last_time[symbol] = bar.time
        closed: list[Bar] = []
        current = self._open.get(symbol)
        if current is not None and current[0] != minute:
            closed.append(self._close(symbol, current))
            current = None
        if current is None:
            self._open[symbol] = [minute, bar.open, bar.high, bar.low, bar.close, bar.volume]
        else:
            if bar.high > current[2]:
                current[2] = bar.high
            if bar.low < current[3]:
                current[3] = bar.low
            current[4] = bar.close
            current[5] += bar.volume
        if bar.close_time >= minute + MINUTE:
            closed.append(self._close(symbol, self._open[symbol]))
        return closed

    def flush(self, symbol: str | None = None, *, before: int | None = None) -> list[Bar]:
        """Close open minutes now (all symbols, or one), e.g. at shutdown or when the feed
        has gone quiet. With ``before``, only minutes that ended at or before that epoch
        second are closed."""
        out: list[Bar] = []
        for sym in [symbol] if symbol is not None else sorted(self._open):
            current = self._open.get(sym)
            if current is None:
                continue
            if before is not None and current[0] + MINUTE > before:
                continue
            out.append(self._close(sym, current))
        return out

    def _close(self, symbol: str, current: list[float]) -> Bar:
        del self._open[symbol]
        minute = int(current[0])
        self._last_closed[symbol] = minute
        return Bar(
            symbol, minute, MINUTE, current[1], current[2], current[3], current[4], current[5]
        )


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


def parse_time(text: str) -> int:
    """Epoch seconds from ``text``: integer epoch seconds or ISO 8601 (naive means UTC).

    Raises ValueError with a readable reason. The common ``YYYY-MM-DDTHH:MM:SS[Z]`` form is
    parsed without building a datetime.
    """
    s = text.strip()
    if s and (s.isdigit() or (s[0] == "-" and s[1:].isdigit())) and s.isascii():
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
        value = float(s)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value.is_integer():
            return int(value)
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
    return int(parsed.timestamp())


def format_time(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for an epoch second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        for col in (*REQUIRED_COLUMNS, "symbol"):
            setattr(self, col, names.index(col) if col in names else None)
        self.width = max(
            self.time, self.open, self.high, self.low, self.close, self.volume, self.symbol or 0
        )


def _open_csv(path: str | Path) -> tuple[Iterator[list[str]], _Columns, object]:
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
        if name == "volume" and value < 0:
            return f"column volume: {raw.strip()} is negative"
    return "unreadable row"


def iter_csv_bars(
    path: str | Path, *, symbol: str | None = None, bar_seconds: int | None = None
) -> Iterator[Bar]:
    """Yield the bars of a CSV file in file order (DESIGN §5 format).

    Header ``time,open,high,low,close,volume`` (any order, case-insensitive) plus an optional
    ``symbol`` column. ``time`` is the bar start: epoch seconds or ISO 8601 (naive = UTC).
    With a symbol column, ``symbol`` keeps only that symbol's rows; without one it names the
    symbol (default: :func:`default_symbol`). ``bar_seconds`` defaults to the smallest gap
    between consecutive bars of a symbol (found in a first pass over the file).

    Raises :class:`BarFileError` (file, line, problem) for a missing column, an unparsable
    number or time, bars out of order per symbol, or bars that overlap ``bar_seconds``.
    Memory use does not grow with the file.
    """
    wanted = symbol.strip().upper() if symbol else None
    if bar_seconds is None:
        inferred = infer_bar_seconds(path, symbol=symbol)
        # A single bar has no gap: assume one minute; nothing can depend on it but stamps.
        bar_seconds = inferred if inferred is not None else MINUTE
    elif bar_seconds <= 0:
        raise BarFileError(path, None, f"bar length must be positive, got {bar_seconds}")
    reader, cols, handle = _open_csv(path)
    fallback = wanted or default_symbol(path)
    it, io, ih, il, ic, iv = cols.time, cols.open, cols.high, cols.low, cols.close, cols.volume
    isym, width = cols.symbol, cols.width
    last: dict[str, int] = {}
    isfinite = math.isfinite
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
                raw_t = row[it]
                t = int(raw_t) if raw_t.isdigit() else parse_time(raw_t)
                o = float(row[io])
                h = float(row[ih])
                lo = float(row[il])
                c = float(row[ic])
                v = float(row[iv])
            except (ValueError, IndexError):
                if len(row) <= width:
                    raise BarFileError(
                        path, reader.line_num, f"expected {width + 1} fields, found {len(row)}"
                    ) from None
                raise BarFileError(path, reader.line_num, _row_problem(row, cols)) from None
            if not (
                o > 0 and h > 0 and lo > 0 and c > 0 and v >= 0 and isfinite(o + h + lo + c + v)
            ):
                raise BarFileError(path, reader.line_num, _row_problem(row, cols))
            if not sym:
                raise BarFileError(path, reader.line_num, "empty symbol")
            prev = last.get(sym)
            if prev is not None and t - prev < bar_seconds:
                if t <= prev:
                    raise BarFileError(path, reader.line_num, _order_problem(sym, t, prev))
                raise BarFileError(
                    path,
                    reader.line_num,
                    f"{sym} bar at {format_time(t)} starts {t - prev} s after the previous "
                    f"one, but bars are {bar_seconds} s long; check --bar-seconds",
                )
            last[sym] = t
            yield Bar(sym, t, bar_seconds, o, h, lo, c, v)
    except csv.Error as err:
        raise BarFileError(path, reader.line_num, f"unreadable CSV ({err})") from None
    except UnicodeDecodeError:
        raise BarFileError(path, reader.line_num + 1, "the file is not UTF-8 text") from None
    finally:
        handle.close()
