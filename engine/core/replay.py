"""Replay a CSV of bars through a rule: the pure part of ``manage.py replay``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from engine.core.bars import (
    MINUTE,
    BarFileError,
    BarRow,
    SymbolCheck,
    iter_csv_bars,
    read_csv_rows,
)
from engine.core.inputs import InputError, load_json
from engine.core.machine import Signal, SymbolMachine
from engine.core.rules import RuleDef, RuleError, validate_definition
from signals import events

__all__ = [
    "ReplayError",
    "iter_csv_bars",
    "load_rule_file",
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


def load_rule_file(path: str | Path) -> RuleDef:
    """Read and validate a rule JSON file (DESIGN §2, ``id``/``name``/``type`` allowed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ReplayError(
            f"{path}: cannot read the rule file ({err.strerror or err})", path=str(path)
        ) from None
    except UnicodeDecodeError:
        raise ReplayError(f"{path}: the rule file is not UTF-8 text", path=str(path)) from None
    try:
        data = load_json(text)
    except InputError as err:
        if err.syntax is not None:
            raise ReplayError(
                f"{path}, line {err.line}: invalid JSON ({err.syntax}, column {err.column})",
                path=str(path),
                line=err.line,
            ) from None
        raise ReplayError(f"{path}: {err}", path=str(path)) from None
    try:
        return validate_definition(data)
    except RuleError as err:
        raise ReplayError(f"{path}: invalid rule: {err}", path=str(path)) from None


# Signals held in memory while the bar length is still being inferred; more go to a
# temporary file (see replay_events).
MAX_HELD_SIGNALS = 10_000


def replay_events(
    bars_path: str | Path,
    rule: RuleDef,
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    check_symbol: SymbolCheck | None = None,
) -> Iterator[events.SignalEvent]:
    """Run ``rule`` over the bars in ``bars_path`` and yield DESIGN §3 signal events.

    One :class:`SymbolMachine` per symbol; events come in file order with ``id`` 1..N and
    ``timestamp`` = bar close time. ``rule_id``/``rule_name`` come from the rule's metadata.
    File problems raise :class:`ReplayError`.

    Without ``bar_seconds`` the bar length is the smallest gap in the whole file, known only
    at its end. Which bars fire does not depend on it (close times all shift by the same
    amount, and cooldowns compare close times with each other), so the file is read once
    with bars stamped by their start, and the signals are held back and re-stamped at the
    end: the first :data:`MAX_HELD_SIGNALS` in memory, the rest in a temporary file, so
    memory stays flat however long the file is.
    """
    try:
        if bar_seconds is not None:
            if bar_seconds <= 0:
                raise ReplayError(f"--bar-seconds must be positive, got {bar_seconds}")
            rows = read_csv_rows(
                bars_path,
                symbol=symbol,
                bar_seconds=bar_seconds,
                min_gap=None,
                check_symbol=check_symbol,
            )
            yield from _events(_run(rows, rule, bar_seconds), rule, bar_seconds, shift=0)
            return
        min_gap = [0]
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        # Bars stamped with length 0 (close = start) until the real length is known.
        rows = read_csv_rows(
            bars_path, symbol=symbol, bar_seconds=0, min_gap=min_gap, check_symbol=check_symbol
        )
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spill:
            held: list[Signal] = []
            spilled = 0
            for signal in _run(rows, rule, 0):
                if len(held) < MAX_HELD_SIGNALS:
                    held.append(signal)
                else:
                    spill.write(
                        dumps([signal.symbol, signal.close_time, signal.price, signal.values])
                        + "\n"
                    )
                    spilled += 1
            inferred = min_gap[0] or MINUTE
            yield from _events(held, rule, inferred, shift=inferred)
            if spilled:
                spill.seek(0)
                rule_id = rule.rule_id
                rest = (
                    Signal(sym, close_time, price, rule_id, values)
                    for sym, close_time, price, values in map(json.loads, spill)
                )
                yield from _events(rest, rule, inferred, shift=inferred, first_id=len(held) + 1)
    except BarFileError as err:
        raise ReplayError(str(err), path=err.path, line=err.line) from None


def _run(
    rows: Iterator[BarRow],
    rule: RuleDef,
    bar_seconds: int,
) -> Iterator[Signal]:
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
    signals: Iterable[Signal], rule: RuleDef, bar_seconds: int, *, shift: int, first_id: int = 1
) -> Iterator[events.SignalEvent]:
    rule_name = rule.name
    for number, signal in enumerate(signals, first_id):
        yield events.signal_from(
            signal, id=number, rule_name=rule_name, bar_seconds=bar_seconds, shift=shift
        )


def replay_lines(
    bars_path: str | Path,
    rule: RuleDef,
    *,
    symbol: str | None = None,
    bar_seconds: int | None = None,
    check_symbol: SymbolCheck | None = None,
) -> Iterator[str]:
    """:func:`replay_events` as compact JSON lines (no trailing newline)."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    events = replay_events(
        bars_path, rule, symbol=symbol, bar_seconds=bar_seconds, check_symbol=check_symbol
    )
    for event in events:
        yield dumps(event)
