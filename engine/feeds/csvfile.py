"""The csv feed: replays a file of bars through the live path, in real time or faster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

from django.core.exceptions import ValidationError

from engine.core.bars import Bar, BarFileError, MinuteAggregator, iter_csv_bars
from engine.core.instruments import ContractInfo, ItemError, parse_item
from engine.feeds.base import BarEvent, Feed, FeedError, FeedEvent, InstrumentEvent, StatusEvent
from watchlists.services import symbol_normalize


def watchlist_symbol(raw: str) -> str:
    """The watchlist's item reader as the bar reader's ``check_symbol``: one rule for every
    entry point (pages, CLI, csv feed, replay, preview). A file's symbol is an item text
    (``AAPL``, ``ES:FUT:CME``), returned canonical; ValueError with its sentence."""
    try:
        return symbol_normalize(raw)
    except ValidationError as err:
        raise ValueError(" ".join(err.messages).rstrip(".")) from None


def file_contract(symbol: str) -> ContractInfo | None:
    """The contract a file's item names, with no minimum tick (``""``)."""
    try:
        item = parse_item(symbol)
    except ItemError:
        return None
    local = f"{item.symbol}.{item.currency}" if item.sec_type in ("CASH", "CRYPTO") else item.symbol
    return ContractInfo(local, item.sec_type, item.exchange, item.currency, "")


class CsvFeed(Feed):
    """Bars from a CSV file (DESIGN §5 format). Symbols come from the file, not the watchlist.

    ``speed`` 1 replays at the file's pace, 10 ten times faster, 0 without waiting. The feed
    ends when the file does. 5-second files are aggregated when the run uses 1-minute bars.

    There is no separate warm-up (``warmup_bars`` is not used): as in ``replay``, every bar
    of the file is live and the file's first bars fill the indicators, longer timeframes
    included, so the run's signals are those ``replay`` finds in the same file.
    """

    name = "csv"

    def __init__(self, path: str | Path, *, speed: float = 1.0) -> None:
        self.path = Path(path)
        self.speed = speed
        self._closed = asyncio.Event()
        self.bars_read = 0

    def _bars(self, bar_seconds: int) -> Iterator[Bar]:
        bars = iter_csv_bars(self.path, check_symbol=watchlist_symbol)
        first = next(bars, None)
        if first is None:
            return
        if first.seconds == bar_seconds:
            yield first
            yield from bars
            return
        if bar_seconds == 60 and 60 % first.seconds == 0:
            aggregator = MinuteAggregator()
            yield from aggregator.feed(first)
            for bar in bars:
                yield from aggregator.feed(bar)
            yield from aggregator.flush()
            return
        raise FeedError(
            f"{self.path} has {first.seconds} s bars; the run uses {bar_seconds} s bars. "
            "Pick the file's bar size on the Settings page.",
            permanent=True,
        )

    async def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        pace = "as fast as possible" if self.speed <= 0 else f"{self.speed:g}× real time"
        yield StatusEvent("running", f"Replaying {self.path.name} {pace}.")
        previous_time: int | None = None
        announced: set[str] = set()
        try:
            for bar in self._bars(bar_seconds):
                if self._closed.is_set():
                    return
                if previous_time is not None and bar.time > previous_time:
                    if self.speed > 0:
                        try:
                            await asyncio.wait_for(
                                self._closed.wait(), (bar.time - previous_time) / self.speed
                            )
                        except TimeoutError:
                            pass
                        else:
                            return
                    elif self.bars_read % 500 == 0:
                        await asyncio.sleep(0)
                previous_time = bar.time
                self.bars_read += 1
                if bar.symbol not in announced:  # a file names no contract or tick size
                    announced.add(bar.symbol)
                    contract = file_contract(bar.symbol)
                    if contract is not None:
                        yield InstrumentEvent(bar.symbol, contract)
                yield BarEvent(bar)
        except BarFileError as err:
            raise FeedError(str(err), permanent=True) from None
        except OSError as err:
            raise FeedError(
                f"Can't read {self.path}: {err.strerror or err}.", permanent=True
            ) from None

    async def close(self) -> None:
        self._closed.set()
