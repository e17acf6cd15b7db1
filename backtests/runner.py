"""The worker's backtest runner: one queued run at a time, in a thread, with progress.

``BacktestRunner().run()`` is a task of the worker (``Engine.main``). It polls for queued runs
about every second (:meth:`BacktestRunner.wake` makes it look at once), and runs each in a
thread (:func:`asyncio.to_thread`) so that the live engine's loop never waits for it. A run
writes its progress about twice a second, checks its cancel flag between chunks, and ends
``done``, ``cancelled`` or ``failed`` with one sentence; nothing it meets reaches the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from inspect import signature
from typing import Any

from django.db import close_old_connections, connection

from backtests import services
from backtests.models import BacktestRun
from bars.services import bars_between, bars_count, bars_store
from engine.core.bars import Bar, format_time
from engine.core.outcomes import horizon_label, parse_horizons
from engine.core.rules import RuleDef, RuleError, validate_definition
from engine.core.stats import HorizonStats

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
PROGRESS_EVERY = 0.5  # seconds between progress writes
CHECK_BARS = 2000  # bars between looks at the clock
SIGNAL_BUFFER = 1000  # signal rows written together
IB_SHARE = 0.5  # of the progress bar: the IB download, before the test
COVERED_SHARE = 0.9  # of a window's bars stored: it is not downloaded again
# Extra HistoryDownload arguments (tests: a shorter connect timeout).
IB_OPTIONS: dict[str, Any] = {"connect_timeout": 10.0}


class Cancelled(Exception):
    pass


class Stopped(Exception):
    pass


class RunProblem(Exception):
    """A run that can't go on; ``str()`` is the sentence the page shows."""


class Tally:
    """Per rule and per rule × symbol: signals and each horizon's figures
    (:class:`~engine.core.stats.HorizonStats`, the same as the live statistics)."""

    def __init__(self, rules: list[dict[str, Any]], horizons: tuple[int, ...]) -> None:
        self.rules = rules
        self.horizons = horizons
        self.labels = [horizon_label(h) for h in horizons]
        self._rule: dict[Any, tuple[list[int], dict[str, HorizonStats]]] = {}
        self._pair: dict[tuple[Any, str], tuple[list[int], dict[str, HorizonStats]]] = {}

    def _new(self) -> tuple[list[int], dict[str, HorizonStats]]:
        return [0], {horizon_label(h): HorizonStats(h) for h in self.horizons}

    def add(self, event: dict[str, Any]) -> None:
        rule_id, symbol = event.get("rule_id"), str(event.get("symbol", ""))
        outcomes = event.get("outcomes") or {}
        by_rule = self._rule.get(rule_id)
        if by_rule is None:
            by_rule = self._rule[rule_id] = self._new()
        by_pair = self._pair.get((rule_id, symbol))
        if by_pair is None:
            by_pair = self._pair[(rule_id, symbol)] = self._new()
        for count, per_horizon in (by_rule, by_pair):
            count[0] += 1
            for label, stats in per_horizon.items():
                got = outcomes.get(label)
                if got:
                    stats.add_values(got.get("return_pct"), got.get("mfe_pct"), got.get("mae_pct"))

    @staticmethod
    def _json(entry: tuple[list[int], dict[str, HorizonStats]]) -> dict[str, Any]:
        return {"signals": entry[0][0], "horizons": {k: v.to_json() for k, v in entry[1].items()}}

    def result(self) -> list[dict[str, Any]]:
        """One stats line per rule, in rule order, with ``symbols`` (rule × symbol)."""
        out = []
        for rule in self.rules:
            line = {
                "event": "stats",
                "rule_id": rule["id"],
                "rule_name": rule["name"],
                **self._json(self._rule.get(rule["id"]) or self._new()),
                "symbols": {
                    symbol: self._json(entry)
                    for (rid, symbol), entry in sorted(self._pair.items(), key=lambda kv: kv[0][1])
                    if rid == rule["id"]
                },
            }
            out.append(line)
        return out


def rule_defs(run: BacktestRun) -> list[RuleDef]:
    """The run's rule snapshot as core rules (each named and numbered as stored)."""
    defs = []
    for rule in run.rules:
        try:
            definition = validate_definition(rule["definition"])
        except (RuleError, KeyError, TypeError) as err:
            raise RunProblem(f"Rule {rule.get('name')!r} is invalid: {err}") from None
        defs.append(replace(definition, rule_id=rule["id"], name=rule["name"]))
    return defs


def merged_bars(symbols: Iterable[str], seconds: int, start: int, end: int) -> Iterator[Bar]:
    """The stored bars of every symbol in the period, in time order (symbols in the order
    given at the same time), as the live engine would have taken them."""
    order = {symbol: i for i, symbol in enumerate(symbols)}
    streams = [bars_between(symbol, seconds, start, end) for symbol in order]
    return heapq.merge(*streams, key=lambda bar: (bar.time, order[bar.symbol]))


class Job:
    """One run, executed in the runner's thread."""

    def __init__(self, run: BacktestRun, stop: threading.Event) -> None:
        self.run = run
        self.stop = stop
        self.began = time.monotonic()
        self.last_write = 0.0
        self.buffer: list[dict[str, Any]] = []
        self.signals = 0
        self.bars = 0
        self.horizons = parse_horizons(run.horizons)
        self.symbols_seen: dict[str, None] = {}
        # The core's statistics: its stats lines once complete, or the core to ask
        # (a cancelled run: the signals handed out so far).
        self.stats_lines: list[dict[str, Any]] = []
        self.core: Any = None
        self.offset, self.scale = 0.0, 1.0  # of the progress bar, for this part of the run
        self.last_fraction = 0.0
        self.last_message = ""

    # ---- progress, cancel, signals -----------------------------------------------------------

    def check(self, fraction: float, message: str, *, force: bool = False) -> None:
        """Write progress now and then; raise :class:`Cancelled` / :class:`Stopped`."""
        if self.stop.is_set():
            raise Stopped
        now = time.monotonic()
        if not force and now - self.last_write < PROGRESS_EVERY:
            return
        message = message or self.last_message
        self.last_message = message
        self.last_write = now
        self.flush()
        fraction = self.offset + self.scale * min(1.0, max(0.0, fraction))
        elapsed = now - self.began
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        if services.backtest_progress(
            run_id=self.run.pk, progress=fraction, eta_seconds=eta, message=message, bars=self.bars
        ):
            raise Cancelled

    def take(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.symbols_seen.setdefault(str(event.get("symbol", "")))
            self.buffer.append(event)
        if len(self.buffer) >= SIGNAL_BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.signals += services.backtest_signals_add(run_id=self.run.pk, events=self.buffer)
            self.buffer = []

    # ---- sources -------------------------------------------------------------------------------

    def period(self) -> tuple[int, int]:
        return int(self.run.start.timestamp()), int(self.run.end.timestamp())

    def over_bars(self, bars: Iterable[Bar], label: str) -> None:
        from engine.core.backtest import Backtest

        start, end = self.period()
        span = max(1, end - start)
        test = self.core = Backtest(
            rule_defs(self.run),
            bar_seconds=self.run.bar_seconds,
            horizons=self.horizons,
            by_symbol=True,
        )
        count = 0
        for bar in bars:
            self.take(test.feed(bar.symbol, bar.time, bar.open, bar.high, bar.low, bar.close,
                                bar.volume))  # fmt: skip
            count += 1
            if count % CHECK_BARS == 0:
                self.bars = count
                self.check((bar.time - start) / span, f"{label}: {format_time(bar.time)}")
        self.bars = count
        self.take(test.finish())
        self.flush()
        self.stats_lines = test.stats()
        if not count:
            raise RunProblem(
                f"No bars of {self.run.bar_seconds} s are stored for "
                f"{', '.join(self.run.symbols)} between {format_time(start)} and "
                f"{format_time(end)}; choose another period, or download IB history."
            )

    def over_stored(self) -> None:
        start, end = self.period()
        self.over_bars(
            merged_bars(self.run.symbols, self.run.bar_seconds, start, end), "Testing stored bars"
        )

    def over_csv(self) -> None:
        from engine.core.backtest import backtest_events
        from engine.core.bars import BarFileError
        from engine.core.replay import ReplayError

        path = services.upload_path(self.run)
        if path is None or not path.exists():
            raise RunProblem("The uploaded file is gone; upload it again.")
        where = [0.0]

        def progress(done: int, total: int) -> None:
            where[0] = done / total if total else 0.0

        summary: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        parameters = signature(backtest_events).parameters
        if "summary" in parameters:
            extra["summary"] = summary
        if "by_symbol" in parameters:
            extra["by_symbol"] = True
        try:
            count = 0
            for event in backtest_events(
                path,
                rule_defs(self.run),
                bar_seconds=self.run.bar_seconds,
                horizons=self.horizons,
                progress=progress,
                **extra,
            ):
                if event.get("event") == "stats":
                    self.stats_lines.append(event)
                if event.get("event") != "signal":
                    continue
                self.take([event])
                count += 1
                if count % 200 == 0:
                    self.check(where[0], "Testing the uploaded file")
                elif self.stop.is_set():
                    raise Stopped
            self.check(where[0], "Testing the uploaded file")
            self.bars = int(summary.get("bars") or 0)
        except (ReplayError, BarFileError) as err:
            name = self.run.upload_name or "the uploaded file"
            text = str(err)
            if path is not None:
                text = text.replace(str(path), name)
            raise RunProblem(text) from None
        self.flush()

    def covered(self, windows: list[tuple[int, int]]) -> set[tuple[str, int]]:
        """The (item, window start) already stored nearly whole: not asked again."""
        seconds = self.run.bar_seconds
        out = set()
        for symbol in self.run.symbols:
            for a, b in windows:
                need = (b - a) // seconds
                have = bars_count(symbol, seconds, a, b)
                if need and have >= need * COVERED_SHARE:
                    out.add((symbol, a))
        return out

    def over_ib(self) -> None:
        from engine.feeds.ib.history import (
            Chunk,
            HistoryDownload,
            Notice,
            history_client_id,
            plan_windows,
        )
        from engine.services import settings_get

        config = settings_get()
        start, end = self.period()
        client_id = history_client_id(config.ib_client_id)
        download = HistoryDownload(
            host=config.ib_host,
            port=config.ib_port,
            client_id=client_id,
            items=self.run.symbols,
            bar_seconds=self.run.bar_seconds,
            start=start,
            end=end,
            use_rth=config.use_rth,
            skip=self.covered(plan_windows(start, end, self.run.bar_seconds)),
            **IB_OPTIONS,
        )
        # The download is the first part of the progress bar, the test the rest. Its steps
        # run on a loop of this thread, driven from here between the store's writes (the
        # ORM is never called with a loop running).
        self.scale = IB_SHARE
        loop = asyncio.new_event_loop()
        steps = download.run()
        stored = 0
        try:
            while True:
                try:
                    item = loop.run_until_complete(anext(steps))
                except StopAsyncIteration:
                    break
                if isinstance(item, Chunk):
                    stored += bars_store(item.bars)
                elif isinstance(item, Notice):
                    services.backtest_notice(run_id=self.run.pk, sentence=item.sentence)
                    self.check(self.last_fraction, item.sentence, force=True)
                elif item.total > 0:
                    self.last_fraction = item.done / item.total
                    self.check(self.last_fraction, f"{item.message} ({stored} bars stored)")
                else:
                    self.check(self.last_fraction, "")
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(steps.aclose())
            loop.close()
        if not download.with_bars:
            raise RunProblem(
                "IB gave no history for any symbol of this run; see the messages above."
            )
        self.run.symbols = download.with_bars
        self.offset, self.scale = IB_SHARE, 1 - IB_SHARE
        self.over_stored()

    # ---- the whole run ---------------------------------------------------------------------

    def execute(self) -> None:
        run = self.run
        try:
            self.check(0.0, "Starting…", force=True)
            if run.source == BacktestRun.Source.CSV:
                self.over_csv()
            elif run.source == BacktestRun.Source.IB:
                self.over_ib()
            else:
                self.over_stored()
        except Cancelled:
            self._end(BacktestRun.State.CANCELLED)
        except Stopped:
            self._end(BacktestRun.State.FAILED, error=services.WORKER_STOPPED)
        except RunProblem as err:
            self._end(BacktestRun.State.FAILED, error=str(err))
        except Exception as err:  # a run never takes the worker down
            logger.exception("backtest %s failed", run.pk)
            self._end(
                BacktestRun.State.FAILED,
                error=f"The backtest stopped on an unexpected error ({type(err).__name__}: "
                f"{str(err)[:200]}).",
            )
        else:
            self._end(BacktestRun.State.DONE)

    def stats(self) -> list[dict[str, Any]]:
        """Per rule (and rule x symbol): the core's lines; for a CSV run cut short, counted
        here from the signals stored."""
        if self.stats_lines and all("symbols" in line for line in self.stats_lines):
            return self.stats_lines
        if self.core is not None:
            return list(self.core.stats())
        tally = Tally(self.run.rules, self.horizons)
        events = self.run.signals.order_by("seq").values_list("event", flat=True)
        for event in events.iterator(chunk_size=2000):
            tally.add(event)
        return tally.result()

    def _end(self, state: str, *, error: str = "") -> None:
        with contextlib.suppress(Exception):
            self.flush()
        symbols = list(self.run.symbols) if self.run.source != "csv" else sorted(self.symbols_seen)
        services.backtest_finish(
            run_id=self.run.pk,
            state=state,
            result={"stats": self.stats()},
            error=error,
            bars=self.bars,
            symbols=symbols,
        )


def run_next(stop: threading.Event | None = None) -> int | None:
    """Claim the oldest queued run and execute it here (blocking); its id, or None if there
    was none."""
    run = services.backtest_claim_next()
    if run is None:
        return None
    Job(run, stop or threading.Event()).execute()
    return run.pk


def _in_thread(stop: threading.Event) -> int | None:
    """:func:`run_next` in the runner's thread, with a database connection of its own."""
    close_old_connections()
    try:
        return run_next(stop)
    finally:
        connection.close()


class BacktestRunner:
    """The worker's task: polls for queued runs and runs them one at a time in a thread."""

    def __init__(self, *, poll: float = POLL_SECONDS, execute: Callable[..., Any] = _in_thread):
        self.poll = poll
        self._execute = execute
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()

    def wake(self) -> None:
        """Look for a queued run now (e.g. when the page asks for one over the bridge)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        try:
            await asyncio.to_thread(self._fail_orphans)
            while True:
                try:
                    ran = await asyncio.to_thread(self._execute, self._stop)
                except Exception:
                    logger.exception("backtest runner")
                    ran = None
                if ran is not None:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
        finally:
            # The worker is stopping: a run under way ends (failed: the worker stopped).
            self._stop.set()

    @staticmethod
    def _fail_orphans() -> None:
        close_old_connections()
        try:
            count = services.backtests_fail_orphans()
            if count:
                logger.info("%s backtest run(s) left running by a stopped worker: failed", count)
        except Exception:
            logger.exception("backtest runner: marking orphaned runs")
        finally:
            connection.close()
