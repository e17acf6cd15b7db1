"""Helpers for the IB feed tests: bar series for the fake gateway and a feed-run recorder."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from engine.core.bars import Bar
from engine.feeds.base import (
    BarEvent,
    FeedEvent,
    InstrumentEvent,
    MarketEvent,
    StatusEvent,
    StreamEvent,
)

WAIT = 5.0  # generous upper bound for any single wait; tests never sleep this long


def minute_floor(t: float) -> int:
    return int(t) - int(t) % 60


def make_bars(
    start: int, count: int, *, seconds: int = 5, price: float = 100.0, step: float = 0.01
) -> list[tuple[int, float, float, float, float, float]]:
    """``count`` bars from ``start``: a gentle uptrend with distinct closes."""
    out = []
    for i in range(count):
        o = round(price + i * step, 2)
        c = round(o + step, 2)
        out.append((start + i * seconds, o, round(c + 0.02, 2), round(o - 0.02, 2), c, 100 + i))
    return out


class FeedRun:
    """Consumes ``feed.events(...)`` in a task and records every event for assertions."""

    def __init__(
        self, feed, symbols: Sequence[str], *, bar_seconds: int = 5, warmup_bars: int = 10
    ):
        self.feed = feed
        self.events: list[FeedEvent] = []
        self._changed = asyncio.Event()
        self._agen = feed.events(list(symbols), bar_seconds=bar_seconds, warmup_bars=warmup_bars)
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for event in self._agen:
            self.events.append(event)
            self._changed.set()
        self._changed.set()

    @property
    def finished(self) -> bool:
        return self.task.done()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` is true; fail with the events so far if it never is."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task.done():
                self.task.result()  # raise the feed's exception, if any
                if predicate():
                    return
                raise AssertionError(f"feed ended early; events: {self.describe()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; events: {self.describe()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def wait_bars(self, symbol: str, count: int, *, warmup: bool | None = False) -> list[Bar]:
        await self.wait_for(lambda: len(self.bars(symbol, warmup=warmup)) >= count)
        return self.bars(symbol, warmup=warmup)

    async def wait_status(
        self,
        state: str,
        *,
        after: int = 0,
        symbol: str | None = None,
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> StatusEvent:
        """The first status event of ``state`` at index ``after`` or later."""

        def find() -> StatusEvent | None:
            for event in self.events[after:]:
                if (
                    isinstance(event, StatusEvent)
                    and event.state == state
                    and (symbol is None or event.symbol == symbol)
                ):
                    return event
            return None

        await self.wait_for(lambda: find() is not None, timeout=timeout)
        found = find()
        assert found is not None
        return found

    async def wait_for_message(self, fragment: str, *, timeout: float = WAIT) -> str:  # noqa: ASYNC109
        """The first status sentence containing ``fragment`` (waiting for it)."""

        def find() -> str | None:
            return next((m for m in self._messages() if fragment in m), None)

        await self.wait_for(lambda: find() is not None, timeout=timeout)
        found = find()
        assert found is not None
        return found

    def _messages(self) -> list[str]:
        return [e.message for e in self.events if isinstance(e, StatusEvent)]

    def bars(self, symbol: str | None = None, *, warmup: bool | None = False) -> list[Bar]:
        return [
            e.bar
            for e in self.events
            if isinstance(e, BarEvent)
            and (warmup is None or e.warmup == warmup)
            and (symbol is None or e.bar.symbol == symbol)
        ]

    def instruments(self) -> dict[str, InstrumentEvent]:
        return {e.symbol: e for e in self.events if isinstance(e, InstrumentEvent)}

    def markets(self, symbol: str | None = None) -> list[MarketEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, MarketEvent) and (symbol is None or e.symbol == symbol)
        ]

    def streams(self, symbol: str) -> list[str]:
        """``symbol``'s stream states in the order the feed reported them."""
        return [e.stream for e in self.events if isinstance(e, StreamEvent) and e.symbol == symbol]

    def statuses(self, state: str | None = None) -> list[StatusEvent]:
        return [
            e
            for e in self.events
            if isinstance(e, StatusEvent) and (state is None or e.state == state)
        ]

    def describe(self) -> str:
        lines = []
        for e in self.events[-40:]:
            if isinstance(e, BarEvent):
                b = e.bar
                lines.append(
                    f"bar {b.symbol} {b.time} {b.seconds}s c={b.close}{' w' if e.warmup else ''}"
                )
            elif isinstance(e, InstrumentEvent):
                lines.append(f"instrument {e.symbol}: {e.contract}")
            elif isinstance(e, MarketEvent):
                lines.append(f"market {e.symbol}: {'open' if e.is_open else 'closed'}, {e.line}")
            elif isinstance(e, StreamEvent):
                lines.append(f"stream {e.symbol}: {e.stream} {e.reason}")
            else:
                lines.append(
                    f"{e.state}: {e.message} [{e.symbol}{' permanent' if e.permanent else ''}]"
                )
        return "\n  " + "\n  ".join(lines)

    async def close(self) -> None:
        await self.feed.close()
        await asyncio.wait_for(self.task, WAIT)
