"""Replay a CSV of bars through a rule: the pure part of ``manage.py replay``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import chain, islice
from pathlib import Path

from engine.core.bars import (
    MINUTE,
    Bar,
    BarFileError,
    BarRow,
    BucketAggregator,
    Progress,
    SymbolCheck,
    infer_bar_seconds,
    iter_csv_bars,
    read_csv_bars,
    read_csv_blocks,
    read_csv_rows,
)
from engine.core.inputs import InputError, load_json
from engine.core.machine import Signal, SymbolMachine, SymbolRules
from engine.core.rules import RuleDef, RuleError, timeframe_problem, validate_definition
from signals import events

__all__ = [
    "ReplayError",
    "iter_csv_bars",
    "load_rule_file",
    "load_rules_file",
    "replay_events",
    "replay_lines",
]


class ReplayError(ValueError):
    """Bad replay input; ``str()`` is one line naming the file, the line (if any) and the
    problem."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


def _read_json(path: str | Path) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ReplayError(
            f"{path}: cannot read the rule file ({err.strerror or err})", path=str(path)
        ) from None
    except UnicodeDecodeError:
        raise ReplayError(f"{path}: the rule file is not UTF-8 text", path=str(path)) from None
    try:
        return load_json(text)
    except InputError as err:
        if err.syntax is not None:
            raise ReplayError(
                f"{path}, line {err.line}: invalid JSON ({err.syntax}, column {err.column})",
                path=str(path),
                line=err.line,
            ) from None
        raise ReplayError(f"{path}: {err}", path=str(path)) from None


def load_rule_file(path: str | Path) -> RuleDef:
    """Read and validate a rule JSON file (DESIGN §2, ``id``/``name``/``type`` allowed)."""
    data = _read_json(path)
    try:
        return validate_definition(data)
    except RuleError as err:
        raise ReplayError(f"{path}: invalid rule: {err}", path=str(path)) from None


MAX_RULES = 10  # as many as may be active at once in the live engine (DESIGN §7.2)


def load_rules_file(path: str | Path) -> list[RuleDef]:
    """Read a rule JSON file holding one rule or a list of 1 to :data:`MAX_RULES` rules.

    In a list, a rule without an ``id`` gets its position (1, 2, ...) so that every signal
    names the rule it came from; ids must then differ.
    """
    data = _read_json(path)
    if not isinstance(data, list):
        try:
            return [validate_definition(data)]
        except RuleError as err:
            raise ReplayError(f"{path}: invalid rule: {err}", path=str(path)) from None
    if not 1 <= len(data) <= MAX_RULES:
        raise ReplayError(
            f"{path}: the list holds {len(data)} rules; give 1 to {MAX_RULES}", path=str(path)
        )
    rules: list[RuleDef] = []
    seen: dict[int, int] = {}
    for position, item in enumerate(data, start=1):
        try:
            rule = validate_definition(item)
        except RuleError as err:
            raise ReplayError(
                f"{path}: rule {position} of {len(data)} is invalid: {err}", path=str(path)
            ) from None
        if rule.rule_id is None:
            rule = replace(rule, rule_id=position)
        assert rule.rule_id is not None
        if rule.rule_id in seen:
            raise ReplayError(
                f"{path}: rules {seen[rule.rule_id]} and {position} both have id "
                f"{rule.rule_id}; give each rule its own id",
                path=str(path),
            )
        seen[rule.rule_id] = position
        rules.append(rule)
    return rules


# Signals held in memory while the bar length is still being inferred; more go to a
# temporary file (see replay_events).
MAX_HELD_SIGNALS = 10_000
# Rows read to tell whether a file is finer than --bar-seconds (then its bars are combined).
SNIFF_ROWS = 500


def replay_events(
    bars_path: str | Path,
    rules: RuleDef | Sequence[RuleDef],
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    check_symbol: SymbolCheck | None = None,
) -> Iterator[events.SignalEvent]:
    """Run one rule or several over the bars in ``bars_path`` and yield DESIGN §3 signal
    events.

    One state machine per (rule, symbol); events come in file order (rules in their order
    on the same bar) with ``id`` 1..N and ``timestamp`` = bar close time.
    ``rule_id``/``rule_name``/``side`` come from each rule. File problems raise
    :class:`ReplayError`.

    ``bar_seconds`` longer than the file's bars (``--bar-seconds 60`` on 5-second bars)
    combines them the way the live engine does (:class:`BucketAggregator`: UTC-aligned
    buckets, partial first and last ones included); whether the file is finer is told from
    its first :data:`SNIFF_ROWS` rows.

    Without ``bar_seconds`` the bar length is the smallest gap in the whole file, known only
    at its end. Which bars fire does not depend on it when no rule uses a higher timeframe
    (close times all shift by the same amount, and cooldowns compare close times with each
    other), so the file is read once with bars stamped by their start, and the signals are
    held back and re-stamped at the end: the first :data:`MAX_HELD_SIGNALS` in memory, the
    rest in a temporary file, so memory stays flat however long the file is. A rule with a
    timeframe operand needs the real close times (a 1-minute bucket closes with the bar that
    ends at its end), so then the length is found by a first pass over the file.
    """
    rule_list = [rules] if isinstance(rules, RuleDef) else list(rules)
    if not rule_list:
        raise ReplayError("no rule to replay")
    names = {rule.rule_id: rule.name for rule in rule_list}
    try:
        min_gap = [0]
        blocks, bar_seconds = bar_blocks(
            bars_path, rule_list, symbol=symbol, bar_seconds=bar_seconds,
            check_symbol=check_symbol, min_gap=min_gap,
        )  # fmt: skip
        rows = chain.from_iterable(blocks)
        if bar_seconds:
            yield from _events(_run(rows, rule_list, bar_seconds), names, bar_seconds, shift=0)
            return
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spill:
            held: list[Signal] = []
            spilled = 0
            for signal in _run(rows, rule_list, 0):
                if len(held) < MAX_HELD_SIGNALS:
                    held.append(signal)
                else:
                    spill.write(
                        dumps(
                            [
                                signal.symbol,
                                signal.close_time,
                                signal.price,
                                signal.values,
                                signal.rule_id,
                                signal.side,
                            ]
                        )  # fmt: skip
                        + "\n"
                    )
                    spilled += 1
            inferred = min_gap[0] or MINUTE
            yield from _events(held, names, inferred, shift=inferred)
            if spilled:
                spill.seek(0)
                rest = (
                    Signal(sym, close_time, price, rule_id, values, side)
                    for sym, close_time, price, values, rule_id, side in map(json.loads, spill)
                )
                yield from _events(rest, names, inferred, shift=inferred, first_id=len(held) + 1)
    except BarFileError as err:
        raise ReplayError(str(err), path=err.path, line=err.line) from None


def bar_blocks(
    bars_path: str | Path,
    rules: Sequence[RuleDef],
    *,
    symbol: str | None,
    bar_seconds: int | None,
    check_symbol: SymbolCheck | None,
    min_gap: list[int],
    progress: Progress | None = None,
) -> tuple[Iterator[Iterable[BarRow]], int]:
    """The rows a run of ``rules`` takes from ``bars_path`` (in blocks: see
    :func:`~engine.core.bars.read_csv_blocks`) and their bar length, as
    :func:`replay_events` describes: with ``bar_seconds`` (or a timeframe operand, then it is
    inferred by a first pass) the rows (combined when the file is finer) and that length;
    otherwise the file's rows to be stamped with length 0 and 0: the caller shifts close times
    by ``min_gap[0] or MINUTE`` (the smallest gap, known once the rows are read).

    Raises :class:`ReplayError` for a bad length or a timeframe that doesn't fit it, and
    :class:`BarFileError` for the file (now or while the rows are read)."""
    if bar_seconds is None and any(rule.timeframes() for rule in rules):
        bar_seconds = infer_bar_seconds(bars_path, symbol=symbol) or MINUTE
    if bar_seconds is None:
        # Bars stamped with length 0 (close = start) until the real length is known.
        blocks = read_csv_blocks(
            bars_path, symbol=symbol, bar_seconds=0, min_gap=min_gap, check_symbol=check_symbol,
            progress=progress,
        )  # fmt: skip
        return blocks, 0
    if bar_seconds <= 0:
        raise ReplayError(f"--bar-seconds must be positive, got {bar_seconds}")
    for rule in rules:
        problem = timeframe_problem(rule, bar_seconds)
        if problem is not None:
            where = f"rule {rule.name!r}: " if rule.name else ""
            raise ReplayError(f"{where}{problem}")
    finer = _finer_bars(bars_path, symbol, bar_seconds)
    if finer is not None:
        bars = read_csv_bars(
            bars_path, symbol=symbol, bar_seconds=finer, min_gap=[0], check_symbol=check_symbol,
            progress=progress,
        )  # fmt: skip
        return iter((_combined(bars, bar_seconds),)), bar_seconds
    blocks = read_csv_blocks(
        bars_path, symbol=symbol, bar_seconds=bar_seconds, min_gap=None,
        check_symbol=check_symbol, progress=progress,
    )  # fmt: skip
    return blocks, bar_seconds


def _finer_bars(path: str | Path, symbol: str | None, bar_seconds: int) -> int | None:
    """The file's bar length when its first rows show bars shorter than ``bar_seconds``
    that fit it a whole number of times (then they are combined); otherwise None."""
    last: dict[str, int] = {}
    best: int | None = None
    rows = read_csv_rows(path, symbol=symbol, bar_seconds=0, min_gap=[0])
    for sym, t, *_ in islice(rows, SNIFF_ROWS):
        prev = last.get(sym)
        if prev is not None and (best is None or t - prev < best):
            best = t - prev
        last[sym] = t
    if best is not None and best < bar_seconds and bar_seconds % best == 0:
        return best
    return None


def _combined(bars: Iterator[Bar], bar_seconds: int) -> Iterator[BarRow]:
    """Bars combined into ``bar_seconds`` buckets, as rows; the last ones close at the end."""
    aggregator = BucketAggregator(bar_seconds)
    for bar in bars:
        for out in aggregator.feed(bar):
            yield out.symbol, out.time, out.open, out.high, out.low, out.close, out.volume
    for out in sorted(aggregator.flush(), key=lambda b: b.time):
        yield out.symbol, out.time, out.open, out.high, out.low, out.close, out.volume


def _run(rows: Iterator[BarRow], rules: list[RuleDef], bar_seconds: int) -> Iterator[Signal]:
    if len(rules) == 1:
        yield from _run_one(rows, rules[0], bar_seconds)
        return
    books: dict[str, SymbolRules] = {}
    for sym, t, o, h, lo, c, v in rows:
        book = books.get(sym)
        if book is None:
            book = books[sym] = SymbolRules(rules, sym)
        fired = book.on_values(t, bar_seconds, o, h, lo, c, v)
        if fired:
            yield from fired


def _run_one(rows: Iterator[BarRow], rule: RuleDef, bar_seconds: int) -> Iterator[Signal]:
    machines: dict[str, SymbolMachine] = {}
    last_symbol: str | None = None
    # Bound on the first row (its symbol is never None); a declaration, no code runs.
    on_values: Callable[[int, int, float, float, float, float, float], Signal | None]
    for sym, t, o, h, lo, c, v in rows:
        if sym != last_symbol:
            last_symbol = sym
            machine = machines.get(sym)
            if machine is None:
                machine = machines[sym] = SymbolMachine(rule, sym)
            on_values = machine.on_values
        signal = on_values(t, bar_seconds, o, h, lo, c, v)
        if signal is not None:
            yield signal


def _events(
    signals: Iterable[Signal],
    names: dict[int | None, str],
    bar_seconds: int,
    *,
    shift: int,
    first_id: int = 1,
) -> Iterator[events.SignalEvent]:
    for number, signal in enumerate(signals, first_id):
        yield events.signal_from(
            signal, id=number, rule_name=names.get(signal.rule_id, ""),
            bar_seconds=bar_seconds, shift=shift,
        )  # fmt: skip


def replay_lines(
    bars_path: str | Path,
    rules: RuleDef | Sequence[RuleDef],
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    check_symbol: SymbolCheck | None = None,
) -> Iterator[str]:
    """:func:`replay_events` as compact JSON lines (no trailing newline)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    events = replay_events(
        bars_path, rules, symbol=symbol, bar_seconds=bar_seconds, check_symbol=check_symbol
    )
    for event in events:
        yield dumps(event)
