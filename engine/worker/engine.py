"""The engine worker: follows the desired state, runs feeds through the signal core, stores
signals first and publishes them second. Small step methods so tests can drive it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import close_old_connections, transaction

from alerts.sender import Sender
from alerts.services import outbox_add
from backtests.runner import BacktestRunner
from engine import services
from engine.core.bars import Bar
from engine.core.indicators import PriceError
from engine.core.instruments import DEFAULT_ROLL_DAYS
from engine.core.machine import Signal, SymbolRules
from engine.core.outcomes import Outcome
from engine.feeds import FEEDS
from engine.feeds.base import (
    BarEvent,
    Feed,
    FeedError,
    InstrumentEvent,
    MarketEvent,
    StatusEvent,
    StreamEvent,
)
from engine.feeds.csvfile import CsvFeed
from engine.feeds.demo import DemoFeed
from engine.models import EngineState
from engine.worker import keeper
from engine.worker.clock import market_clock
from engine.worker.config import ConfigError, Overrides, RunConfig, RunRule, load_run_config
from engine.worker.keeper import Keeper, OutcomeKey
from engine.worker.publish import LogPublisher, Publisher
from engine.worker.resume import CatchUp, Crash, catch_up_plan, crash_read, last_signals
from signals import events
from signals.models import Signal as StoredSignal
from signals.services import signal_record

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.5  # how often the worker writes its heartbeat and reads the desired state


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Run:
    """One Start → Stop of the engine."""

    config: RunConfig
    feed: Feed
    machines: dict[str, SymbolRules] = field(default_factory=dict)
    task: asyncio.Task | None = None
    bars: int = 0
    signals: int = 0
    last_bar_time: int | None = None
    # symbol -> why it is not scanned (unknown, no permission): repeated in later messages
    problems: dict[str, str] = field(default_factory=dict)
    # symbol -> the contract the feed resolved it to (the events' ``contract`` object)
    contracts: dict[str, dict] = field(default_factory=dict)
    # symbol -> its market line per its own trading hours
    markets: dict[str, MarketEvent] = field(default_factory=dict)
    # symbol -> how its bars flow (streaming / stale / closed / refused, why, since when)
    streams: dict[str, StreamEvent] = field(default_factory=dict)
    # symbol -> close time up to which its bars are judged live, their signals stored (from
    # its first live bar on, or carried over from a crashed run): where a worker restarted
    # after a crash catches up from
    judged: dict[str, int] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)  # items whose bars are being judged live
    judged_changed: bool = False
    catch_up: CatchUp | None = None  # the first run after a crash: bars the dead run missed
    warmup_bars: int = 0  # what the feed is asked for: the rules' need (+ a catch-up's)
    # the bar store and the outcomes of its signals (DESIGN §7.3); set from the config
    keeper: Keeper = field(init=False)

    def __post_init__(self) -> None:
        self.keeper = Keeper(self.config)

    def machine(self, symbol: str) -> SymbolRules:
        """The symbol's state machines, one per rule of the run, sharing its indicators."""
        machine = self.machines.get(symbol)
        if machine is None:
            config = self.config
            machine = self.machines[symbol] = SymbolRules(
                [run_rule.rule for run_rule in config.rules], symbol, rule_ids=config.rule_ids
            )
        return machine

    def rule(self, rule_id: int | None) -> RunRule:
        """The run's rule that fired a signal."""
        return next(run_rule for run_rule in self.config.rules if run_rule.id == rule_id)


def make_feed(config: RunConfig) -> Feed:
    """The feed a run asked for."""
    if config.feed == "demo":
        return DemoFeed(speed=config.speed, roll_days=config.ib.get("roll_days", DEFAULT_ROLL_DAYS))
    if config.feed == "csv":
        return CsvFeed(config.csv_path, speed=config.speed)
    if config.feed == "ib":
        from engine.feeds.ib import IBFeed  # the IB library is loaded only for the ib feed

        return IBFeed(**config.ib, clock=market_clock())
    raise ValueError(f"unknown feed {config.feed!r}; use one of {', '.join(FEEDS)}")


def heartbeat(last_bar_time: int | None, symbols: dict[str, dict] | None = None) -> str:
    """The tick's database step (in Django's sync thread); returns the desired state.
    ``symbols``: the run's items, when their judged bars moved on."""
    close_old_connections()  # a long-lived process: drop connections the database closed
    if symbols is not None:
        services.worker_symbols(symbols=symbols)
    return services.worker_heartbeat(
        last_bar_time=utc(last_bar_time) if last_bar_time is not None else None
    )


def record_signal(
    signal: Signal, run_rule: RunRule, bar_seconds: int, contract: dict | None = None
) -> StoredSignal | None:
    """Store first (None: this bar's signal was stored already), publish second. The alert
    outbox rows are written in the signal's transaction (DESIGN §7.4)."""
    with transaction.atomic():
        row = signal_record(
            time=utc(signal.close_time),
            symbol=signal.symbol,
            price=signal.price,
            rule_id=run_rule.id,
            rule_name=run_rule.name,
            bar_seconds=bar_seconds,
            values=signal.values,
            side=signal.side,
            contract=contract,
        )
        if row is not None:
            outbox_add(row)
    return row


def record_bar(
    bars: list[Bar],
    fired: list[tuple[Signal, RunRule]],
    bar_seconds: int,
    contract: dict | None,
    finals: list[tuple[OutcomeKey, Outcome]],
) -> tuple[list[StoredSignal], list[events.OutcomeEvent]]:
    """One transaction for a bar: the bar (and any bars waiting: a 1-minute bar it closed,
    warm-up bars), its signals with their alert outbox rows, and the outcomes that became
    final on it. Returns the signals stored now (a re-delivered bar's are not) and the
    outcome events to publish."""
    with transaction.atomic():
        outcomes = keeper.store(bars, finals)
        rows = []
        for signal, run_rule in fired:
            row = record_signal(signal, run_rule, bar_seconds, contract)
            if row is not None:
                rows.append(row)
    return rows, outcomes


def store_kept(bars: list[Bar], finals: list[tuple[OutcomeKey, Outcome]]) -> list:
    """Warm-up bars and outcomes, without a live bar: one transaction."""
    with transaction.atomic():
        return keeper.store(bars, finals)


class Engine:
    def __init__(
        self,
        *,
        overrides: Overrides | None = None,
        publisher: Publisher | None = None,
        start: bool = False,
    ) -> None:
        self.overrides = overrides or Overrides()
        self.publisher = publisher or LogPublisher()
        self.start_requested = start
        self.shutdown = asyncio.Event()
        self.wake = asyncio.Event()
        self.reload_requested = False
        self.run: Run | None = None
        self.state: str = EngineState.State.IDLE
        self.message: str | None = None  # None until the first state is published
        self.sender = Sender()  # alerts: delivers the outbox while the worker lives
        self.backtests = BacktestRunner()  # backtest runs asked for on the Backtest page
        # What a worker that died mid-run left (read at start); the first run catches up.
        self.crash: Crash | None = None
        self.pruned_at: float | None = None  # market-clock time of the last bar-store prune

    # --- lifecycle ---------------------------------------------------------------------------

    async def main(self) -> None:
        """Run until :meth:`request_shutdown`; never raises for feed or data problems."""
        # Before worker_recover forgets it: did the last worker die mid-run, and where?
        self.crash = await sync_to_async(crash_read)()
        note = await sync_to_async(services.worker_recover)(pid=os.getpid())
        if note:
            logger.warning(note)
        if self.start_requested:
            await sync_to_async(services.engine_request)(desired="running")
        sending = asyncio.create_task(self.sender.run(), name="alerts-sender")
        backtesting = asyncio.create_task(self.backtests.run(), name="backtests")
        try:
            while not self.shutdown.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), TICK_SECONDS)
                self.wake.clear()
        finally:
            if self.run is not None:
                await self.stop_run("The engine worker stopped.")
            else:
                await self.set_state(EngineState.State.IDLE, "The engine worker stopped.")
            for task in (sending, backtesting):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.publisher.close()

    def request_shutdown(self) -> None:
        self.shutdown.set()
        self.wake.set()

    def on_command(self, command: str) -> None:
        """A UI command arrived over the bridge: act now instead of at the next tick."""
        if command == "reload":
            self.reload_requested = True
        self.wake.set()

    async def tick(self) -> None:
        """Heartbeat, then act on the desired state (start or stop a run)."""
        run = self.run
        last_bar_time = run.last_bar_time if run is not None else None
        symbols = None
        if run is not None and run.judged_changed:
            run.judged_changed = False
            symbols = self.symbols_state(run)
        desired = await sync_to_async(heartbeat)(last_bar_time, symbols)
        await self.prune()
        if self.reload_requested:
            self.reload_requested = False
            if self.run is not None:
                await self.stop_run("Reloading the rules and watchlist…")
        running = self.run is not None and self.run.task is not None and not self.run.task.done()
        if desired == EngineState.Desired.RUNNING and not running:
            if self.run is None:
                await self.start_run()
        elif desired == EngineState.Desired.STOPPED and self.run is not None:
            await self.stop_run("Stopped.")

    async def prune(self) -> None:
        """Once a day (and at start): stored bars older than the retention setting go."""
        now = market_clock()()
        if self.pruned_at is not None and now - self.pruned_at < keeper.PRUNE_EVERY_SECONDS:
            return
        self.pruned_at = now
        days = self.run.config.retention_days if self.run is not None else None
        try:
            if days is None:
                days = (await sync_to_async(services.settings_get)()).bar_retention_days
            await sync_to_async(keeper.prune)(now=now, days=days)
        except Exception:  # a busy database: try again at the next day's prune
            logger.exception("pruning the bar store failed")

    async def start_run(self) -> None:
        try:
            config = await sync_to_async(load_run_config)(self.overrides)
        except ConfigError as err:
            await self.fail(str(err))
            return
        feed = make_feed(config)
        run = Run(config=config, feed=feed, warmup_bars=config.warmup_bars)
        crash, self.crash = self.crash, None
        note = ""
        if crash is not None:
            run.catch_up, note = await sync_to_async(catch_up_plan)(crash, config)
            if run.catch_up is not None:
                # The feed's history must reach back over the dead stretch (capped).
                run.warmup_bars += run.catch_up.extra_bars(market_clock()(), config.bar_seconds)
        self.run = run
        await self.seed(run)
        await sync_to_async(services.worker_run_started)(
            rule_ids=config.rule_ids, watchlist_id=config.watchlist_id
        )
        if run.catch_up is not None and run.catch_up.after:
            # Until this run has judged them, the dead run's points stand: killed again
            # meanwhile, the next worker still catches up from there.
            run.judged.update(run.catch_up.after)
            await sync_to_async(services.worker_symbols)(symbols=self.symbols_state(run))
        await self.set_state(
            EngineState.State.CONNECTING,
            f"Starting: {config.describe_rules()} on {self.describe_symbols(config)} "
            f"({config.bar_seconds} s bars, {config.feed} feed).",
        )
        if note:
            logger.warning(note)
            await self.on_status(StatusEvent("notice", note), run)
        run.task = asyncio.create_task(self.consume(run), name="engine-run")

    async def seed(self, run: Run) -> None:
        """Before the first bar: signals still waiting for outcomes are tracked again (from
        the store), and the IB feed's warm-up starts from the stored bars."""
        now = market_clock()()
        try:
            await sync_to_async(keeper.seed)(run.keeper, now=now)
        except Exception:  # outcomes left open stay open; the run itself goes on
            logger.exception("tracking the open outcomes again failed")
        config = run.config
        if config.feed != "ib" or run.catch_up is not None:
            return  # the demo and csv feeds make their own history; a catch-up needs IB's
        stored, ask = await sync_to_async(keeper.warmup_from_store)(
            config.symbols, config.bar_seconds, run.warmup_bars, now=now
        )
        for symbol, bars in stored.items():
            machine = run.machine(symbol)
            for bar in bars:
                try:
                    machine.warm(bar)
                except PriceError:
                    continue  # never stored: the core refused it when it came
                run.keeper.known(bar)
        if stored:
            logger.info(
                "warm-up: %s from the bar store, %d bars asked of the feed",
                ", ".join(f"{sym} {len(bars)}" for sym, bars in stored.items()),
                ask,
            )
            run.warmup_bars = ask

    @staticmethod
    def describe_symbols(config: RunConfig) -> str:
        if config.feed == "csv":
            return f"the symbols in {os.path.basename(config.csv_path)}"
        return " ".join(config.symbols)

    async def stop_run(self, message: str) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        await self.set_state(EngineState.State.STOPPING, "Stopping…")
        await run.feed.close()
        if run.task is not None and not run.task.done():
            run.task.cancel()
            # The run reports its own failures; here we only wait for it to end.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run.task
        await self.release(run)
        await self.set_state(EngineState.State.IDLE, message)

    async def release(self, run: Run) -> None:
        await self.flush_kept(run)
        last_bar_time = utc(run.last_bar_time) if run.last_bar_time is not None else None
        await sync_to_async(services.worker_run_ended)(last_bar_time=last_bar_time)

    async def fail(self, message: str) -> None:
        """A run can't go on: show why, and stop wanting to run until the user says Start."""
        await sync_to_async(services.engine_request)(desired="stopped")
        await self.set_state(EngineState.State.ERROR, message)

    # --- the run -----------------------------------------------------------------------------

    async def consume(self, run: Run) -> None:
        config = run.config
        try:
            async for event in run.feed.events(
                config.symbols,
                bar_seconds=config.bar_seconds,
                warmup_bars=run.warmup_bars,
            ):
                if isinstance(event, BarEvent):
                    await self.on_bar(run, event.bar, warmup=event.warmup)
                elif isinstance(event, InstrumentEvent | MarketEvent | StreamEvent):
                    await self.on_instrument(run, event)
                else:
                    await self.on_status(event, run)
        except asyncio.CancelledError:
            raise
        except FeedError as err:
            await self.end_run(run, EngineState.State.ERROR, err.message)
            return
        except Exception:
            logger.exception("engine run failed")
            await self.end_run(
                run, EngineState.State.ERROR, "The engine hit an internal error; see the log."
            )
            return
        if self.run is run:
            await self.end_run(
                run,
                EngineState.State.IDLE,
                f"Feed finished: {run.bars} bars, {run.signals} signals.",
            )

    async def end_run(self, run: Run, state: str, message: str) -> None:
        """The run ended by itself. "Stopped" is written while the run is still ours: a tick
        that reads the desired state meanwhile sees the run (and leaves it) or "stopped"
        (the worker's database calls run in one thread, in order), never a "running" with no
        run, which would start the finished run again."""
        if self.run is not run:
            return
        await sync_to_async(services.engine_request)(desired="stopped")
        self.run = None
        await self.release(run)
        await self.set_state(state, message)

    async def on_bar(self, run: Run, bar: Bar, *, warmup: bool) -> None:
        machine = run.machine(bar.symbol)
        plan = run.catch_up
        # A warm-up bar the run that crashed never judged is judged now (catch-up).
        catching = warmup and plan is not None and plan.judges(bar)
        if warmup and not catching:
            try:
                machine.warm(bar)
            except PriceError as err:
                await self.skipped(bar, err)
                return
            run.keeper.take(bar)
            if run.keeper.full:
                await self.flush_kept(run)
            return
        if bar.symbol not in run.live:
            await self.going_live(run, bar, machine)
        try:
            if catching:
                assert plan is not None
                fired = machine.catch_up(bar, plan.rule_ids)
            else:
                fired = machine.on_bar(bar)
        except PriceError as err:
            await self.skipped(bar, err)
            return
        run.bars += 1
        run.last_bar_time = bar.close_time
        if catching:
            assert plan is not None
            plan.bars += 1
        run.keeper.take(bar)  # before its signals: a signal's window starts after its bar
        bars, finals = run.keeper.drain()
        rows, outcomes = await sync_to_async(record_bar)(
            bars,
            [(signal, run.rule(signal.rule_id)) for signal in fired],
            run.config.bar_seconds,
            run.contracts.get(bar.symbol),
            finals,
        )
        for row in rows:
            run.signals += 1
            if catching:
                assert plan is not None
                plan.signals += 1
            run.keeper.track(row)
            self.sender.wake()
            await self.publisher.publish(row.to_event())
        for outcome in outcomes:
            await self.publisher.publish(outcome)
        # Judged, its signals stored: a worker restarted after a crash goes on after it.
        if bar.close_time > run.judged[bar.symbol]:
            run.judged[bar.symbol] = bar.close_time
            run.judged_changed = True
        if catching:
            return  # an old bar: its signals go out, the tiles wait for the live ones
        if plan is not None and not plan.reported:
            await self.report_catch_up(run)
        await self.publisher.publish(self.bar_event(run, bar, machine))

    async def flush_kept(self, run: Run) -> None:
        """Store the warm-up bars and outcomes waiting (a batch, or the run's end)."""
        bars, finals = run.keeper.drain()
        if not bars and not finals:
            return
        try:
            outcomes = await sync_to_async(store_kept)(bars, finals)
        except Exception:  # the run goes on; these bars come back with the next warm-up
            logger.exception("storing %d warm-up bars failed", len(bars))
            return
        for outcome in outcomes:
            await self.publisher.publish(outcome)

    async def skipped(self, bar: Bar, err: PriceError) -> None:
        """A price with digits below 1e-8 can't be kept exactly: skip that bar (the core
        changed nothing), say which, go on with the next."""
        logger.warning("skipped a bar: %s", err)
        await self.on_status(StatusEvent("notice", f"Skipped a bar: {err}.", symbol=bar.symbol))

    async def going_live(self, run: Run, bar: Bar, machine: SymbolRules) -> None:
        """The item's first bar judged live. After a crash, its rules first take their last
        stored signals (the cooldowns they were in). Its judged point is stored before the
        bar is judged: a worker killed from now on has its successor catch up from there."""
        plan = run.catch_up
        run.live.add(bar.symbol)
        if plan is not None and bar.symbol in plan.after and plan.rule_ids:
            # Signals before the first bar the rules will decide (a re-delivered bar is not
            # one: every bar up to the warm-up's last counts as the past).
            taken = machine.last_close_time
            first = bar.close_time if taken is None else max(bar.close_time, taken + 1)
            last = await sync_to_async(last_signals)(bar.symbol, plan.rule_ids, first)
            for rule_id, close_time in last.items():
                machine.resume(rule_id, close_time)
        if bar.symbol in run.judged:
            return  # carried over from the crashed run, stored already
        before = machine.last_close_time
        run.judged[bar.symbol] = before if before is not None else bar.time
        run.judged_changed = False
        await sync_to_async(services.worker_symbols)(symbols=self.symbols_state(run))

    async def report_catch_up(self, run: Run) -> None:
        """Say once how the catch-up after a crash went (when live bars begin)."""
        plan = run.catch_up
        if plan is None or plan.reported:
            return
        plan.reported = True
        sentence = plan.sentence()
        logger.warning(sentence)
        await self.on_status(StatusEvent("notice", sentence), run)

    @staticmethod
    def bar_event(run: Run, bar: Bar, machine: SymbolRules) -> events.BarEvent:
        """The bar with every rule's operands; ``state``/``cooldown_until`` are the first
        rule's (the seed's keys), ``rules`` has each rule's."""
        first = machine.machines[0]
        return events.bar(
            symbol=bar.symbol,
            start=bar.time,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            values=machine.last_values(),
            state=first.state,
            cooldown_until=first.cooldown_until,
            rules=[
                events.rule_state(rule_id=m.rule_id, state=m.state, cooldown_until=m.cooldown_until)
                for m in machine.machines
            ],
            contract=run.contracts.get(bar.symbol),
        )

    async def on_instrument(
        self, run: Run, event: InstrumentEvent | MarketEvent | StreamEvent
    ) -> None:
        """A feed resolved an item, its market opened or closed, or its bars stopped or
        started flowing: keep it for the events and the dashboard (DESIGN §7.1)."""
        if isinstance(event, InstrumentEvent):
            run.contracts[event.symbol] = event.contract.to_json()
        elif isinstance(event, MarketEvent):
            run.markets[event.symbol] = event
        else:
            run.streams[event.symbol] = event
        await sync_to_async(services.worker_symbols)(symbols=self.symbols_state(run))

    @staticmethod
    def symbols_state(run: Run) -> dict[str, dict]:
        """Per item of the run: its contract and its market line, as the engine state keeps."""
        names = dict.fromkeys(
            [*run.config.symbols, *run.contracts, *run.markets, *run.streams, *run.judged]
        )
        out: dict[str, dict] = {}
        for name in names:
            market = run.markets.get(name)
            stream = run.streams.get(name)
            out[name] = {
                "contract": run.contracts.get(name),
                "open": market.is_open if market is not None else None,
                "market": market.line if market is not None else "",
                # streaming / stale / closed / refused (None: the feed doesn't say), why,
                # and since when (feed-clock epoch seconds; a stale item shows its silence)
                "stream": stream.stream if stream is not None else None,
                "stream_reason": stream.reason if stream is not None else "",
                "stream_since": stream.since if stream is not None else None,
                # close time (epoch s) up to which its bars are judged live, signals stored
                # (None before its first live bar): a restart after a crash goes on from there
                "last_bar": run.judged.get(name),
            }
        return out

    async def on_status(self, event: StatusEvent, run: Run | None = None) -> None:
        message = event.message
        if run is not None:
            if event.symbol is not None and event.permanent:
                run.problems[event.symbol] = event.message
            elif event.symbol is None and run.problems:
                # The state has one message: without this, the next status ("running",
                # "market closed") would hide why a symbol is not scanned within milliseconds.
                message = " ".join([message, *run.problems.values()])
        if event.state == "notice" or event.symbol is not None:
            # Information about one symbol or the market: keep the state, show the sentence.
            await self.set_state(self.state, message)
            return
        await self.set_state(event.state, message)
        if event.state == "running" and run is not None and run.catch_up is not None:
            await self.report_catch_up(run)  # the feed's warm-up is over

    async def set_state(self, state: str, message: str) -> None:
        """Store the state; publish it only when it changed (a feed retrying TWS repeats the
        same sentence every few seconds). The heartbeat is written either way."""
        if (state, message) == (self.state, self.message):
            await sync_to_async(heartbeat)(None)
            return
        self.state, self.message = state, message
        await sync_to_async(services.worker_report)(state=state, message=message)
        await self.publisher.publish(
            events.status(state=state, message=message, time=int(time.time()))
        )
