"""What happened after a signal (DESIGN §7.3): its outcome at each horizon.

With P the signal's price, T its bar close time and the bars whose close time lies in
(T, T+H]:

- ``return_pct`` = (close of the last of those bars − P) / P × 100
- ``mfe_pct``    = (max high − P) / P × 100   (maximum favourable excursion)
- ``mae_pct``    = (min low − P) / P × 100    (maximum adverse excursion)

For a ``sell`` signal all three are negated and high and low swap roles (favourable is
down). An outcome is final once a bar with close time ≥ T+H has been seen. A window with no
bar at all (a gap that spans the whole horizon: the market closed) is final with no values
(``None``); the data ending before T+H leaves it open (``None`` too, in a backtest's output).

:class:`OutcomeTracker` is the one place both the live worker and ``backtest`` compute them:
per symbol it keeps the bars after its oldest open signal (flat memory: a horizon's worth),
and when a horizon's end is reached it reads the window with ``bisect`` and the builtins
``max``/``min`` over list slices (and over the max/min of whole 16-bar chunks for long
windows), so a bar costs a few list appends and one comparison per horizon however many
signals are open. A backtest hands it the reader's blocks whole (:meth:`OutcomeTracker.extend`).

Pure: no Django, no IB.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final, NamedTuple

from engine.core.inputs import shown

DEFAULT_HORIZONS: Final = "1m,5m,15m"
MAX_HORIZONS: Final = 6
MAX_HORIZON_SECONDS: Final = 86_400  # one day
_UNITS: Final = {"s": 1, "m": 60, "h": 3600}
# ASCII digits only: "²m" or "５m" must not read as a horizon.
_HORIZON_RE = re.compile(r"([0-9]{1,6})([smh])")
DIGITS: Final = 6  # percentages are rounded to 1e-6 %: no float noise in JSON, exact enough


class HorizonError(ValueError):
    """A horizons setting or option that can't be read; ``str()`` is one sentence."""


def parse_horizons(text: str) -> tuple[int, ...]:
    """``"1m,5m,15m"`` → ``(60, 300, 900)``: 1 to :data:`MAX_HORIZONS` distinct horizons,
    each a whole number of seconds (``s``), minutes (``m``) or hours (``h``) up to one day,
    sorted. Raises :class:`HorizonError` naming the bad part."""
    if not isinstance(text, str):
        raise HorizonError(f"horizons are text such as {DEFAULT_HORIZONS}, not {text!r}")
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    if not parts:
        raise HorizonError(f"give at least one horizon, e.g. {DEFAULT_HORIZONS}")
    if len(parts) > MAX_HORIZONS:
        raise HorizonError(f"give at most {MAX_HORIZONS} horizons, not {len(parts)}")
    seen: set[int] = set()
    for part in parts:
        match = _HORIZON_RE.fullmatch(part.lower())
        if match is None:
            raise HorizonError(
                f"“{shown(part)}” is not a horizon: write a whole number and s, m or h, "
                f"e.g. 30s, 5m or 1h (comma-separated: {DEFAULT_HORIZONS})"
            )
        seconds = int(match[1]) * _UNITS[match[2]]
        if not 1 <= seconds <= MAX_HORIZON_SECONDS:
            raise HorizonError(f"“{shown(part)}” is not between 1s and 24h")
        if seconds in seen:
            raise HorizonError(f"the horizon {horizon_label(seconds)} is given twice")
        seen.add(seconds)
    return tuple(sorted(seen))


def horizon_label(seconds: int) -> str:
    """``60`` → ``"1m"``, ``3600`` → ``"1h"``, ``90`` → ``"90s"``: the shortest exact name."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def format_horizons(horizons: Iterable[int]) -> str:
    """``(60, 300, 900)`` → ``"1m,5m,15m"`` (what :func:`parse_horizons` reads back)."""
    return ",".join(horizon_label(h) for h in horizons)


class Outcome(NamedTuple):
    """A signal's final outcome at one horizon (seconds). The three values are None when no
    bar closed inside the window (the market was closed for the whole horizon).

    A named tuple: cheap to make, and once the garbage collector has seen one (numbers
    only) it stops tracking it, so a backtest holding many signals costs it little."""

    horizon: int
    return_pct: float | None
    mfe_pct: float | None
    mae_pct: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"return_pct": self.return_pct, "mfe_pct": self.mfe_pct, "mae_pct": self.mae_pct}


_SCALE: Final = 10.0**DIGITS


def _pct(value: float) -> float:
    """``round(value, DIGITS) + 0.0`` (+ 0.0: never "-0.0"), the same float, about twice as
    fast: R = ``round(value * 1e6)`` is the correctly rounded integer whenever the product
    is further than its own error from a half (error ≤ half an ulp, < 2.5e-4 below 1e12),
    and then the correctly rounded division R / 1e6 is exactly the float ``round`` parses
    from R's decimal digits. Near a half (or out of range) ``round`` itself decides."""
    scaled = value * _SCALE
    if -1e12 < scaled < 1e12:
        whole = round(scaled)
        off = scaled - whole
        if -0.4997 < off < 0.4997:
            return whole / _SCALE
    return round(value, DIGITS) + 0.0


def outcome_values(
    price: float, side: str | None, last_close: float, high: float, low: float
) -> tuple[float, float, float]:
    """(return_pct, mfe_pct, mae_pct) for a window's last close, max high and min low."""
    scale = 100.0 / price
    if side == "sell":
        return (
            _pct((price - last_close) * scale),
            _pct((price - low) * scale),
            _pct((price - high) * scale),
        )
    return (
        _pct((last_close - price) * scale),
        _pct((high - price) * scale),
        _pct((low - price) * scale),
    )


def outcome_of(
    price: float,
    side: str | None,
    close_time: int,
    horizon: int,
    bars: Iterable[tuple[int, float, float, float]],
) -> Outcome:
    """The outcome at ``horizon`` of a signal at ``price`` stamped ``close_time``, from bars
    given as ``(close_time, high, low, close)`` in time order (any others are skipped): the
    §7.3 formulas, side-aware. The straightforward definition; the tracker must agree."""
    end = close_time + horizon
    high = low = last = None
    for bar_close, bar_high, bar_low, bar_last in bars:
        if not close_time < bar_close <= end:
            continue
        high = bar_high if high is None else max(high, bar_high)
        low = bar_low if low is None else min(low, bar_low)
        last = bar_last
    if high is None or low is None or last is None:
        return Outcome(horizon, None, None, None)
    return Outcome(horizon, *outcome_values(price, side, last, high, low))


class _Open:
    """An open signal; ``high``/``low``/``stop`` carry the window read for its previous
    horizon (max high, min low, absolute index past its last bar) so a longer horizon only
    reads the bars after it."""

    __slots__ = ("key", "price", "side", "close_time", "high", "low", "stop")

    def __init__(self, key: Hashable, price: float, side: str | None, close_time: int) -> None:
        self.key = key
        self.price = price
        self.side = side
        self.close_time = close_time
        self.high: float | None = None
        self.low: float | None = None
        self.stop = -1  # absolute index; -1: no horizon read yet


CHUNK: Final = 16  # bars per chunk whose max high and min low a window keeps


class _Window:
    """One symbol's open signals (per horizon, in order of their end T + H) and its bars
    since the oldest of them, as parallel lists; and, for the bars in whole chunks of
    :data:`CHUNK` from the lists' start, each chunk's max high and min low (made when a read
    needs them), so a long window is read as its chunks plus its two ragged ends."""

    __slots__ = (
        "queues", "closes", "highs", "lows", "lasts", "start", "base", "last", "due",
        "chunk_highs", "chunk_lows",
    )  # fmt: skip

    def __init__(self, horizons: int, last: int) -> None:
        self.queues: list[deque[_Open]] = [deque() for _ in range(horizons)]
        self.closes: list[int] = []
        self.highs: list[float] = []
        self.lows: list[float] = []
        self.lasts: list[float] = []
        self.chunk_highs: list[float] = []  # chunk k: bars k * CHUNK .. (k + 1) * CHUNK - 1
        self.chunk_lows: list[float] = []
        self.start = 0  # index of the first bar still needed
        self.base = 0  # bars dropped from the front so far (absolute index of index 0)
        self.last = last  # close time of the symbol's last bar
        # the earliest end (T + H) among the open signals: a bar before it can finish
        # nothing, so on_bar only records it (the common case: one comparison).
        self.due = 2**62

    def trim(self) -> None:
        """Drop the bars no open signal needs once they are half the lists (whole chunks of
        them, with their chunks' figures)."""
        start = self.start
        if start > 64 and start * 2 > len(self.closes):
            cut = start - start % CHUNK
            del self.closes[:cut], self.highs[:cut], self.lows[:cut], self.lasts[:cut]
            del self.chunk_highs[: cut // CHUNK], self.chunk_lows[: cut // CHUNK]
            self.base += cut
            self.start -= cut

    def extremes(self, first: int, end: int) -> tuple[float, float]:
        """Max high and min low of the bars ``first`` .. ``end - 1`` (at least one)."""
        highs, lows = self.highs, self.lows
        if end - first < 3 * CHUNK:
            if end - first == 1:
                return highs[first], lows[first]
            return max(highs[first:end]), min(lows[first:end])
        a = -(-first // CHUNK)  # the first whole chunk
        b = end // CHUNK  # past the last one
        chunk_highs = self.chunk_highs
        made = len(chunk_highs)
        if made < b:  # make the figures of the whole chunks not made yet (all of them)
            upto = len(highs) - len(highs) % CHUNK
            part = highs[made * CHUNK : upto]
            chunk_highs += map(max, *[part[i::CHUNK] for i in range(CHUNK)])
            part = lows[made * CHUNK : upto]
            self.chunk_lows += map(min, *[part[i::CHUNK] for i in range(CHUNK)])
        head, tail = a * CHUNK, b * CHUNK
        top = max(chunk_highs[a:b] + highs[first:head] + highs[tail:end])
        bottom = min(self.chunk_lows[a:b] + lows[first:head] + lows[tail:end])
        return top, bottom


_NEVER: Final = -(2**62)


class OutcomeTracker:
    """Outcomes of open signals, per symbol, as bars come in.

    ``add`` a signal after the bar that fired it; give every later bar of its symbol to
    ``on_bar``, in time order; each call returns the outcomes that became final on that bar
    as ``(key, Outcome)``, shortest horizon first per signal. ``flush`` returns the keys and
    horizons still open (the data ended before T+H). Bars at or before a symbol's last bar
    are ignored (re-delivery).

    ``together=True`` (a backtest, which hands a signal out only once all its horizons are
    final) gives a signal's outcomes all at once, on the bar that ends its longest horizon,
    as ``(key, (Outcome, ...))`` (shortest first): one window read and one pair per signal
    instead of one per horizon. Then call :meth:`settled` before ``flush`` at the end of the
    data for the shorter horizons already final.
    """

    __slots__ = ("horizons", "together", "_windows", "_last", "_queued")

    def __init__(self, horizons: Sequence[int], *, together: bool = False) -> None:
        if not horizons or any(h <= 0 for h in horizons):
            raise ValueError("horizons must be positive seconds")
        self.horizons = tuple(sorted(set(horizons)))
        self.together = together
        # the horizons with a queue each (together: only the longest, holding all)
        self._queued = self.horizons[-1:] if together else self.horizons
        # symbol -> its open signals and the bars they need (only while some are open)
        self._windows: dict[str, _Window] = {}
        # symbol -> its last bar's close time, kept while no signal of it is open
        self._last: dict[str, int] = {}

    def add(
        self, key: Hashable, symbol: str, price: float, side: str | None, close_time: int
    ) -> None:
        """Track a signal (``key``: its id) stamped with its bar's ``close_time``."""
        if price <= 0:
            raise ValueError(f"a signal's price must be positive, got {price}")
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = _Window(
                len(self._queued), self._last.get(symbol, _NEVER)
            )
        item = _Open(key, price, side, close_time)
        for queue in window.queues:
            queue.append(item)
        end = close_time + self._queued[0]
        if end < window.due:
            window.due = end

    def open_count(self) -> int:
        """Open (signal, horizon) pairs."""
        if self.together:
            n = len(self.horizons)
            return sum(len(window.queues[0]) * n for window in self._windows.values())
        return sum(len(q) for window in self._windows.values() for q in window.queues)

    def on_bar(
        self, symbol: str, close_time: int, high: float, low: float, close: float
    ) -> list[tuple[Hashable, Any]]:
        """The outcomes final on this bar: ``(key, Outcome)``; together, ``(key, (Outcome,
        ...))``."""
        window = self._windows.get(symbol)
        if window is None or close_time <= window.last:
            return []
        window.last = close_time
        window.closes.append(close_time)
        window.highs.append(high)
        window.lows.append(low)
        window.lasts.append(close)
        if close_time < window.due:
            return []
        return self._finals(symbol, window, close_time)

    def _finals(
        self, symbol: str, window: _Window, close_time: int, keep: bool = False
    ) -> list[tuple[Hashable, Any]]:
        """The outcomes final at ``close_time`` (grouped by horizon, shortest first, so
        each signal's come shortest first; together: each signal's all at once); then the
        window's start and due move on. The bulk path inlines :meth:`on_bar` up to here."""
        done: list[tuple[Hashable, Any]] = []
        due = 2**62
        newest = _NEVER  # the close time of the newest signal final now
        if self.together:
            horizons = self.horizons
            longest = horizons[-1]
            queue = window.queues[0]
            while queue:
                item = queue[0]
                end_time = item.close_time + longest
                if end_time > close_time:
                    due = end_time
                    break
                queue.popleft()
                newest = item.close_time
                done.append((item.key, _read_all(window, item, horizons)))
        else:
            for horizon, queue in zip(self.horizons, window.queues, strict=True):
                while queue:
                    item = queue[0]
                    end_time = item.close_time + horizon
                    if end_time > close_time:
                        if end_time < due:
                            due = end_time
                        break
                    queue.popleft()
                    done.append((item.key, _read(window, item, horizon)))
        window.due = due
        if done:
            self._forget(symbol, window, keep, newest)
        return done

    def settled(self) -> list[tuple[Hashable, tuple[Outcome, ...]]]:
        """Together: ``(key, (Outcome, ...))`` for the open signals whose shorter horizons are
        final (a bar at or after their end was seen), those horizons shortest first.
        Otherwise nothing (they were given by ``on_bar``). The signals stay open: ``flush``
        next."""
        if not self.together:
            return []
        done: list[tuple[Hashable, tuple[Outcome, ...]]] = []
        for window in self._windows.values():
            for item in window.queues[0]:
                final = [h for h in self.horizons if item.close_time + h <= window.last]
                if final:
                    done.append((item.key, _read_all(window, item, tuple(final))))
        return done

    def flush(self) -> list[tuple[Hashable, int]]:
        """The (key, horizon) pairs still open, and forget them."""
        out: list[tuple[Hashable, int]] = []
        for window in self._windows.values():
            if self.together:
                for item in window.queues[0]:
                    out.extend(
                        (item.key, horizon)
                        for horizon in self.horizons
                        if item.close_time + horizon > window.last
                    )
            else:
                for horizon, queue in zip(self.horizons, window.queues, strict=True):
                    out.extend((item.key, horizon) for item in queue)
        for symbol, window in self._windows.items():
            self._last[symbol] = window.last
        self._windows.clear()
        return out

    def _forget(
        self, symbol: str, window: _Window, keep: bool = False, newest: int = _NEVER
    ) -> None:
        """Move the window's start to the oldest signal still open; none: drop the bars
        (``keep``: only those up to ``newest``, the close of the newest signal just final:
        the signals still to come on a block :meth:`extend` gave fire after it)."""
        oldest: int | None = None
        for queue in window.queues:
            if queue and (oldest is None or queue[0].close_time < oldest):
                oldest = queue[0].close_time
        if oldest is None:
            if not keep:
                self._last[symbol] = window.last
                del self._windows[symbol]
                return
            oldest = newest
        window.start = bisect_right(window.closes, oldest, window.start)
        window.trim()

    # -- bulk (a backtest over blocks of one symbol's bars)

    def extend(
        self,
        symbol: str,
        closes: list[int],
        highs: list[float],
        lows: list[float],
        lasts: list[float],
    ) -> _Window:
        """A block of ``symbol``'s bars at once, close times in order and after its last bar
        (the reader checks both). The symbol gets a window even with no signal open: signals
        fired on these bars read them; call :meth:`drop_idle` after the block (so a window
        holds only bars some open signal needs, plus one block). The caller asks
        ``_finals(symbol, window, window.last, keep=True)`` for what became final."""
        window = self._windows.get(symbol)
        if window is None:
            window = self._windows[symbol] = _Window(
                len(self._queued), self._last.get(symbol, _NEVER)
            )
        window.closes += closes
        window.highs += highs
        window.lows += lows
        window.lasts += lasts
        window.last = closes[-1]
        return window

    def drop_idle(self, symbol: str) -> None:
        """Forget ``symbol``'s window if no signal of it is open (after a block)."""
        window = self._windows.get(symbol)
        if window is not None and not any(window.queues):
            self._last[symbol] = window.last
            del self._windows[symbol]


def _read(window: _Window, item: _Open, horizon: int) -> Outcome:
    """``item``'s outcome at ``horizon`` from ``window``: its bars in (T, T + horizon],
    read on from where its previous (shorter) horizon stopped."""
    closes = window.closes
    stop = item.stop
    first = bisect_right(closes, item.close_time, window.start) if stop < 0 else stop - window.base
    end = bisect_right(closes, item.close_time + horizon, first)
    hi, lo = item.high, item.low
    if end > first:
        top, bottom = window.extremes(first, end)
        if hi is None or top > hi:
            item.high = hi = top
        if lo is None or bottom < lo:
            item.low = lo = bottom
    item.stop = end + window.base
    if hi is None or lo is None:
        return Outcome(horizon, None, None, None)
    # outcome_values, inlined (the same arithmetic and rounding)
    price = item.price
    scale = 100.0 / price
    last = window.lasts[end - 1]
    if item.side == "sell":
        return Outcome(
            horizon,
            _pct((price - last) * scale),
            _pct((price - lo) * scale),
            _pct((price - hi) * scale),
        )
    return Outcome(
        horizon,
        _pct((last - price) * scale),
        _pct((hi - price) * scale),
        _pct((lo - price) * scale),
    )


_new = tuple.__new__  # Outcome(...) without the named tuple's Python-level __new__


def _read_all(window: _Window, item: _Open, horizons: tuple[int, ...]) -> tuple[Outcome, ...]:
    """:func:`_read` for each of ``horizons`` (ascending) of ``item`` at once, shortest first
    (together mode). The same arithmetic and rounding in one call: each horizon reads on from
    where the shorter one stopped."""
    closes, lasts, extremes = window.closes, window.lasts, window.extremes
    close_time = item.close_time
    first = bisect_right(closes, close_time, window.start)
    price = item.price
    scale = 100.0 / price
    sell = item.side == "sell"
    hi = lo = None
    out: list[Outcome] = []
    for horizon in horizons:
        end = bisect_right(closes, close_time + horizon, first)
        if end > first:
            top, bottom = extremes(first, end)
            if hi is None or top > hi:
                hi = top
            if lo is None or bottom < lo:
                lo = bottom
            first = end
        if hi is None or lo is None:
            out.append(_new(Outcome, (horizon, None, None, None)))
            continue
        last = lasts[end - 1]
        if sell:
            values = (
                horizon,
                _pct((price - last) * scale),
                _pct((price - lo) * scale),
                _pct((price - hi) * scale),
            )
        else:
            values = (
                horizon,
                _pct((last - price) * scale),
                _pct((hi - price) * scale),
                _pct((lo - price) * scale),
            )
        out.append(_new(Outcome, values))
    return tuple(out)
