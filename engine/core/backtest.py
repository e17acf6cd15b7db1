"""Backtest: rules over a file of bars, each signal with its outcomes, then per-rule stats
(DESIGN §7.3). The pure part of ``manage.py backtest`` and of the Backtest page.

The same core as live and as ``replay``: one :class:`SymbolMachine` (one rule) or
:class:`SymbolRules` (several) per symbol fed with ``on_values``, so the signals are exactly
replay's (same ids, timestamps, values), plus one :class:`OutcomeTracker` fed every bar.
A signal leaves once all its horizons are final (or the data ends: ``finish``), in id order,
so memory holds only the signals still open (and those behind them in id order), not bars.

Pure: no Django, no IB.
"""

from __future__ import annotations

import json
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.core.bars import MINUTE, BarFileError, BarRow, Columns, SymbolCheck, format_time
from engine.core.machine import Signal, SymbolMachine, SymbolRules
from engine.core.outcomes import Outcome, OutcomeTracker, _Window, horizon_label
from engine.core.replay import MAX_HELD_SIGNALS, ReplayError, bar_blocks
from engine.core.rules import RuleDef
from engine.core.stats import RuleStats
from signals import events

__all__ = ["Backtest", "BacktestEvent", "backtest_events", "backtest_lines"]

BacktestEvent = dict[str, Any]
"""A signal event (``events.signal``) plus ``outcomes``: ``{"1m": {"return_pct", "mfe_pct",
"mae_pct"} | None, ...}``; or a ``{"event": "stats", ...}`` line."""

OutcomesJson = dict[str, dict[str, float | None] | None]


class _Open:
    """A signal waiting for its outcomes (``outcomes``: shortest horizon first; ``done``
    once all are final). The tracker's key for it is the object itself."""

    __slots__ = ("id", "signal", "outcomes", "done")

    def __init__(self, number: int, signal: Signal) -> None:
        self.id = number
        self.signal = signal
        self.outcomes: tuple[Outcome, ...] = ()
        self.done = False


class Backtest:
    """Feed bars (file order); get back the signals whose outcomes are all final, in id
    order, as events with ``outcomes``; ``finish`` at the end; then ``stats``.

    ``bar_seconds`` stamps the bars (close = start + length) and the events; 0 stamps close
    = start, which fires the same signals with the same outcomes (both only compare close
    times with each other) for a caller that learns the length only at the end (see
    :func:`backtest_events`), unless a rule has a timeframe operand.
    """

    def __init__(
        self,
        rules: Sequence[RuleDef],
        *,
        bar_seconds: int,
        horizons: Sequence[int],
        by_symbol: bool = False,
    ) -> None:
        if not rules:
            raise ValueError("no rule to backtest")
        self.rules = list(rules)
        self.bar_seconds = bar_seconds
        self.horizons = tuple(sorted(set(horizons)))
        self.by_symbol = by_symbol
        self.bars = 0
        self._labels = {h: horizon_label(h) for h in self.horizons}
        self._label_list = list(self._labels.values())
        self._names = {rule.rule_id: rule.name for rule in self.rules}
        self._single = self.rules[0] if len(self.rules) == 1 else None
        self._machines: dict[str, SymbolMachine] = {}
        self._books: dict[str, SymbolRules] = {}
        self._tracker = OutcomeTracker(self.horizons, together=True)
        self._open: deque[_Open] = deque()  # in id order
        self._next_id = 1
        self._stats = {rule.rule_id: RuleStats(self.horizons) for rule in self.rules}
        # each rule's figures per horizon, in horizon order (as a signal's outcomes come)
        self._per = {
            rule_id: [stats.per_horizon[h] for h in self.horizons]
            for rule_id, stats in self._stats.items()
        }
        self._symbol_stats: dict[int | None, dict[str, RuleStats]] = {
            rule.rule_id: {} for rule in self.rules
        }
        self._shift = 0

    # -- feeding

    def feed(
        self, sym: str, t: int, o: float, h: float, lo: float, c: float, v: float
    ) -> list[BacktestEvent]:
        """One bar starting at ``t``; the signal events now complete, in id order."""
        return [self._event(item) for item in self.feed_open(sym, t, o, h, lo, c, v)]

    def feed_open(
        self, sym: str, t: int, o: float, h: float, lo: float, c: float, v: float
    ) -> list[_Open]:
        """:meth:`feed` before the events are built (the signals with their outcomes)."""
        self.bars += 1
        seconds = self.bar_seconds
        done = self._tracker.on_bar(sym, t + seconds, h, lo, c)
        if done:
            self._settle(done)
        single = self._single
        if single is not None:
            machine = self._machines.get(sym)
            if machine is None:
                machine = self._machines[sym] = SymbolMachine(single, sym)
            fired = machine.on_values(t, seconds, o, h, lo, c, v)
            if fired is not None:
                self._add(fired)
        else:
            book = self._books.get(sym)
            if book is None:
                book = self._books[sym] = SymbolRules(self.rules, sym)
            for signal in book.on_values(t, seconds, o, h, lo, c, v):
                self._add(signal)
        return self._ready() if done else []

    def finish(self) -> list[BacktestEvent]:
        """The signals still open: outcomes the data ended before are None."""
        return [self._event(item) for item in self.finish_open()]

    def finish_open(self) -> list[_Open]:
        for item, outcomes in self._tracker.settled():
            item.outcomes = outcomes  # type: ignore[attr-defined]  # keys are _Open items
        self._tracker.flush()
        rest = list(self._open)
        self._open.clear()
        for item in rest:
            self._count(item)
        return rest

    def _add(self, signal: Signal) -> None:
        item = _Open(self._next_id, signal)
        self._next_id += 1
        self._open.append(item)
        self._tracker.add(item, signal.symbol, signal.price, signal.side, signal.close_time)

    @staticmethod
    def _settle(done: list[tuple[Any, tuple[Outcome, ...]]]) -> None:
        for item, outcomes in done:
            item.outcomes = outcomes
            item.done = True

    def _ready(self) -> list[_Open]:
        """The signals now complete at the front (id order), counted."""
        out: list[_Open] = []
        opened = self._open
        while opened and opened[0].done:
            item = opened.popleft()
            self._count(item)
            out.append(item)
        return out

    def _count(self, item: _Open) -> None:
        signal = item.signal
        # RuleStats.add_signal, unrolled: each final outcome to its horizon's figures
        self._stats[signal.rule_id].signals += 1
        for figures, outcome in zip(self._per[signal.rule_id], item.outcomes, strict=False):
            figures.add_values(outcome[1], outcome[2], outcome[3])
        if self.by_symbol:
            per = self._symbol_stats[signal.rule_id]
            symbol_stats = per.get(signal.symbol)
            if symbol_stats is None:
                symbol_stats = per[signal.symbol] = RuleStats(self.horizons)
            symbol_stats.add_signal(item.outcomes)

    # -- output

    def outcomes_json(self, item: _Open) -> OutcomesJson:
        found = item.outcomes
        out: OutcomesJson = {
            label: {"return_pct": o[1], "mfe_pct": o[2], "mae_pct": o[3]}
            for label, o in zip(self._label_list, found, strict=False)
        }
        if len(found) < len(self._label_list):
            for label in self._label_list[len(found) :]:
                out[label] = None
        return out

    def event_of(self, item: _Open, *, bar_seconds: int, shift: int) -> BacktestEvent:
        """The signal event of ``item`` (``shift`` added to its close time)."""
        event: BacktestEvent = dict(
            events.signal_from(
                item.signal,
                id=item.id,
                rule_name=self._names.get(item.signal.rule_id, ""),
                bar_seconds=bar_seconds,
                shift=shift,
            )  # fmt: skip
        )
        event["outcomes"] = self.outcomes_json(item)
        return event

    def _event(self, item: _Open) -> BacktestEvent:
        return self.event_of(item, bar_seconds=self.bar_seconds, shift=0)

    def stats(self) -> list[BacktestEvent]:
        """One ``{"event": "stats", "rule_id", "rule_name", "signals", "horizons": {...}}``
        per rule, in rule order (and ``symbols`` per symbol with ``by_symbol``); counts the
        signals handed out so far (all of them after :meth:`finish`)."""
        out: list[BacktestEvent] = []
        for rule in self.rules:
            line: BacktestEvent = {
                "event": "stats",
                "rule_id": rule.rule_id,
                "rule_name": rule.name,
                **self._stats[rule.rule_id].to_json(),
            }
            if self.by_symbol:
                per = self._symbol_stats[rule.rule_id]
                line["symbols"] = {sym: per[sym].to_json() for sym in sorted(per)}
            out.append(line)
        return out


def backtest_events(
    bars_path: str | Path,
    rules: RuleDef | Sequence[RuleDef],
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    horizons: Sequence[int] = (60, 300, 900),
    check_symbol: SymbolCheck | None = None,
    progress: Callable[[int, int], None] | None = None,
    by_symbol: bool = False,
    summary: dict[str, Any] | None = None,
) -> Iterator[BacktestEvent]:
    """The command's stream: signal events with ``outcomes`` (id order), then one stats line
    per rule. File problems raise :class:`ReplayError` (one line) as in replay; the bars are
    read as replay reads them (bar length, ``--bar-seconds`` combining, symbol filter).

    ``progress(bytes_read, total_bytes)`` is called now and then; ``summary`` (a dict), when
    given, gets ``bars``, ``signals``, ``bar_seconds``, ``first`` and ``last`` (bar start
    epochs, None without bars) once the stream ends.
    """
    return _stream(
        bars_path, rules, _EventOut(), symbol=symbol, bar_seconds=bar_seconds,
        horizons=horizons, check_symbol=check_symbol, progress=progress, by_symbol=by_symbol,
        summary=summary,
    )  # fmt: skip


class _EventOut:
    """:func:`_stream`'s output as event dicts. When the bar length is known only at the end
    of the file, signals are made with a guess and kept (in memory, then in a spill file);
    ``restamp`` fixes one whose guess the end of the file proved wrong."""

    def __init__(self) -> None:
        self.spill_dumps = json.JSONEncoder(separators=(",", ":")).encode

    def signal(self, run: Backtest, item: _Open, bar_seconds: int, shift: int) -> Any:
        return run.event_of(item, bar_seconds=bar_seconds, shift=shift)

    def to_spill(self, made: Any) -> str:
        """One line of the spill file (no raw newline or tab: encoded JSON)."""
        return self.spill_dumps(made)

    def from_spill(self, text: str) -> Any:
        return json.loads(text)

    def restamp(self, made: Any, close_time: int, bar_seconds: int) -> Any:
        """``made`` with the bar length the file proved (close time ``close_time`` + it)."""
        made["timestamp"] = format_time(close_time + bar_seconds)
        made["bar_seconds"] = bar_seconds
        return made

    def stats(self, event: BacktestEvent) -> Any:
        return event


class _LineOut(_EventOut):
    """:func:`_stream`'s output as compact JSON lines: the same text as encoding
    :class:`_EventOut`'s events, with an encoder made once (not once per line)."""

    def __init__(self) -> None:
        super().__init__()
        self.dumps = _compact_encoder()

    def signal(self, run: Backtest, item: _Open, bar_seconds: int, shift: int) -> Any:
        return self.dumps(run.event_of(item, bar_seconds=bar_seconds, shift=shift))

    def to_spill(self, made: Any) -> str:
        return made  # type: ignore[no-any-return]  # a line already

    def from_spill(self, text: str) -> Any:
        return text

    def restamp(self, made: Any, close_time: int, bar_seconds: int) -> Any:
        # decoding and encoding again gives the same text (floats round-trip, keys keep
        # their order), with the two restamped values
        return self.dumps(super().restamp(json.loads(made), close_time, bar_seconds))

    def stats(self, event: BacktestEvent) -> Any:
        return self.dumps(event)


def _compact_encoder() -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode`` with its C
    encoder built once (``encode`` builds one per call); the plain ``encode`` without it."""
    plain = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return plain.encode
    # As JSONEncoder.iterencode(_one_shot=True) builds it, minus the cycle check
    # (events are trees).
    encoder = make(
        None, plain.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True
    )
    join = "".join

    def dumps(obj: Any) -> str:
        return join(encoder(obj, 0))

    return dumps


def _stream(
    bars_path: str | Path,
    rules: RuleDef | Sequence[RuleDef],
    out: _EventOut,
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    horizons: Sequence[int] = (60, 300, 900),
    check_symbol: SymbolCheck | None = None,
    progress: Callable[[int, int], None] | None = None,
    by_symbol: bool = False,
    summary: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """:func:`backtest_events` (``out`` an :class:`_EventOut`) or :func:`backtest_lines`
    (a :class:`_LineOut`)."""
    rule_list = [rules] if isinstance(rules, RuleDef) else list(rules)
    if not rule_list:
        raise ReplayError("no rule to backtest")
    signal_out = out.signal
    try:
        min_gap = [0]
        blocks, seconds = bar_blocks(
            bars_path, rule_list, symbol=symbol, bar_seconds=bar_seconds,
            check_symbol=check_symbol, min_gap=min_gap, progress=progress,
        )  # fmt: skip
        run = Backtest(rule_list, bar_seconds=seconds, horizons=horizons, by_symbol=by_symbol)
        span = _Span()
        if seconds:
            for item in _run(run, blocks, span):
                yield signal_out(run, item, seconds, 0)
            inferred = seconds
        else:
            # The bar length is the smallest gap, known at the end of the file. Signals are
            # made with the one the rows read so far show (the reader reads ahead in blocks,
            # so that is the first block's: a file almost always confirms it) and kept, in
            # memory while few, then in a spill file; the end of the file lets them out as
            # made, or restamped when it proved another length.
            guess = 0
            held: list[tuple[int, Any]] = []
            with tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogatepass") as spill:
                spilled = 0
                for item in _run(run, blocks, span):
                    if not guess:
                        guess = min_gap[0] or MINUTE
                    made = signal_out(run, item, guess, guess)
                    if len(held) < MAX_HELD_SIGNALS:
                        held.append((item.signal.close_time, made))
                    else:
                        spill.write(f"{item.signal.close_time}\t{out.to_spill(made)}\n")
                        spilled += 1
                inferred = min_gap[0] or MINUTE
                restamp = out.restamp if guess and inferred != guess else None
                for close_time, made in held:
                    yield made if restamp is None else restamp(made, close_time, inferred)
                held.clear()
                if spilled:
                    spill.seek(0)
                    for text in spill:
                        close_text, _, made_text = text.rstrip("\n").partition("\t")
                        made = out.from_spill(made_text)
                        if restamp is not None:
                            made = restamp(made, int(close_text), inferred)
                        yield made
    except BarFileError as err:
        raise ReplayError(str(err), path=err.path, line=err.line) from None
    if summary is not None:
        summary.update(
            bars=run.bars, signals=run._next_id - 1, bar_seconds=inferred,
            first=span.first, last=span.last,
        )  # fmt: skip
    for event in run.stats():
        yield out.stats(event)


def _run(run: Backtest, blocks: Iterable[Iterable[BarRow]], span: _Span) -> Iterator[_Open]:
    """:meth:`Backtest.feed_open` over the rows of ``blocks``, then
    :meth:`Backtest.finish_open`: the bulk path. A :class:`Columns` block (the fast reader's)
    goes to the tracker whole (:meth:`OutcomeTracker.extend`: four list extends instead of
    four appends per bar), so a signal whose horizons end inside the block is complete as
    soon as it fires; its rows then only go through the machine. Other blocks row by row
    (:func:`_run_rows`). The same signals, outcomes and order either way."""
    seconds = run.bar_seconds
    tracker = run._tracker
    finals = tracker._finals
    extend = tracker.extend
    drop_idle = tracker.drop_idle
    add = run._add
    settle = run._settle
    ready = run._ready
    single = run._single
    machines = run._machines
    books = run._books
    for block in blocks:
        if type(block) is not Columns:
            yield from _run_rows(run, block, span)
            continue
        sym = block.symbol
        times = block.times
        run.bars += len(times)
        span.take(times[0], times[-1])
        closes = times if not seconds else [t + seconds for t in times]
        window = extend(sym, closes, block.highs, block.lows, block.closes)
        known = window.last  # the block's last close: horizons ending by it are complete
        if window.due <= known:
            done = finals(sym, window, known, True)
            if done:
                settle(done)
                yield from ready()
        if single is not None:
            machine = machines.get(sym)
            if machine is None:
                machine = machines[sym] = SymbolMachine(single, sym)
            on_values = machine.on_values
            for _, t, o, h, lo, c, v in block:
                fired = on_values(t, seconds, o, h, lo, c, v)
                if fired is None:
                    continue
                add(fired)
                if window.due <= known:
                    settle(finals(sym, window, known, True))
                    yield from ready()
        else:
            book = books.get(sym)
            if book is None:
                book = books[sym] = SymbolRules(run.rules, sym)
            book_values = book.on_values
            for _, t, o, h, lo, c, v in block:
                fired_all = book_values(t, seconds, o, h, lo, c, v)
                if not fired_all:
                    continue
                for signal in fired_all:
                    add(signal)
                if window.due <= known:
                    settle(finals(sym, window, known, True))
                    yield from ready()
        drop_idle(sym)
    yield from run.finish_open()


def _run_rows(run: Backtest, rows: Iterable[BarRow], span: _Span) -> Iterator[_Open]:
    """:meth:`Backtest.feed_open` over ``rows`` (a block the careful reader read, or bars
    combined into longer ones): the same steps with the lookups hoisted out of the loop. The
    tracker's per-bar step (:meth:`OutcomeTracker.on_bar`) is inlined: while a symbol has
    open signals its window takes the bar (bound appends, its due time in a local), and only
    a bar that reaches the due time calls into the tracker."""
    seconds = run.bar_seconds
    tracker = run._tracker
    windows = tracker._windows
    finals = tracker._finals
    add = run._add
    settle = run._settle
    ready = run._ready
    single = run._single
    machines = run._machines
    books = run._books
    first, last = 2**62, -(2**62)
    bars = 0
    last_symbol: str | None = None
    machine: SymbolMachine | None = None
    book: SymbolRules | None = None
    window: _Window | None = None  # the row's symbol's tracker window (None: none open)
    # Bound when a window is taken (a declaration here, no code runs).
    add_close: Callable[[int], None]
    add_high: Callable[[float], None]
    add_low: Callable[[float], None]
    add_last: Callable[[float], None]
    due = 2**62
    try:
        for sym, t, o, h, lo, c, v in rows:
            bars += 1
            if t > last:
                last = t
            if sym != last_symbol:
                # a symbol's rows come in time order (the reader checks): its run's first
                # row is its earliest
                if t < first:
                    first = t
                last_symbol = sym
                window = windows.get(sym)
                if window is not None:
                    add_close, add_high = window.closes.append, window.highs.append
                    add_low, add_last = window.lows.append, window.lasts.append
                    due = window.due
                if single is not None:
                    machine = machines.get(sym)
                    if machine is None:
                        machine = machines[sym] = SymbolMachine(single, sym)
                else:
                    book = books.get(sym)
                    if book is None:
                        book = books[sym] = SymbolRules(run.rules, sym)
            if window is not None:
                close = t + seconds
                if close > window.last:
                    window.last = close
                    add_close(close)
                    add_high(h)
                    add_low(lo)
                    add_last(c)
                    if close >= due:
                        done = finals(sym, window, close)
                        window = windows.get(sym)
                        if window is not None:
                            due = window.due
                        if done:
                            settle(done)
                            # before this bar's signals are added: they come after the
                            # ready ones in id order and are not complete, so the same
                            # signals leave in the same order
                            yield from ready()
            if machine is not None:
                fired = machine.on_values(t, seconds, o, h, lo, c, v)
                if fired is None:
                    continue
                add(fired)
            else:
                assert book is not None
                fired_all = book.on_values(t, seconds, o, h, lo, c, v)
                if not fired_all:
                    continue
                for signal in fired_all:
                    add(signal)
            window = windows.get(sym)
            if window is not None:
                add_close, add_high = window.closes.append, window.highs.append
                add_low, add_last = window.lows.append, window.lasts.append
                due = window.due
    finally:
        run.bars += bars
        if bars:
            span.take(first, last)


class _Span:
    """The first and last bar start :func:`_run` saw (None: no bar)."""

    __slots__ = ("first", "last")

    def __init__(self) -> None:
        self.first: int | None = None
        self.last: int | None = None

    def take(self, first: int, last: int) -> None:
        """Rows whose starts span ``first`` .. ``last`` were taken."""
        if self.first is None or first < self.first:
            self.first = first
        if self.last is None or last > self.last:
            self.last = last


def backtest_lines(
    bars_path: str | Path, rules: RuleDef | Sequence[RuleDef], **options: Any
) -> Iterator[str]:
    """:func:`backtest_events` as compact JSON lines (no trailing newline)."""
    return _stream(bars_path, rules, _LineOut(), **options)
