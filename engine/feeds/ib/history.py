"""IB history for a backtest: the bars of a period for some watchlist items, in the chunks IB
serves, paced by IB's rules, each item's refusal a sentence (no Django: the caller stores).

:class:`HistoryDownload` connects with its own client id (:func:`history_client_id`: the
settings' id + 100, so it never takes the live run's), looks each item up as the live feed
does, and asks for the period window by window (5-second bars: at most 3600 s per request,
1-minute bars: a day), newest first within an item. :meth:`HistoryDownload.run` is an async
generator of :class:`Chunk` (bars to store), :class:`Notice` (a sentence for the user) and
:class:`Progress`; the caller drives it, stores each chunk and may stop at any yield, which
keeps what it stored. Windows the caller already has (``skip``) are not asked for again, so
a download cut short resumes where it stopped. A pacing refusal (162) is waited out and said.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.core.bars import Bar
from engine.core.instruments import Instrument, ItemError, parse_item
from engine.feeds.ib.bars import MAX_1M_HISTORY, MAX_5S_HISTORY
from engine.feeds.ib.connection import IBConnection
from engine.feeds.ib.contracts import ContractChoiceError, choose_contract, unknown_sentence
from engine.feeds.ib.errors import ConnectFailure, describe_ib_error, is_no_data, is_pacing
from engine.feeds.ib.library import IBClient, IBContract
from engine.feeds.ib.pacing import PACING_RETRIES, PACING_WAIT, HistoryPacer

logger = logging.getLogger(__name__)

CLIENT_ID_OFFSET = 100
REQUEST_TIMEOUT = 60.0  # seconds IB may take to answer one history request
LOOKUP_TIMEOUT = 15.0


def history_client_id(settings_client_id: int) -> int:
    """The download's client id: the live run's + 100 (never the live connection's)."""
    return int(settings_client_id) + CLIENT_ID_OFFSET


def window_seconds(bar_seconds: int) -> int:
    """The longest window IB serves in one request for this bar size."""
    return MAX_5S_HISTORY if bar_seconds == 5 else MAX_1M_HISTORY


def plan_windows(start: int, end: int, bar_seconds: int) -> list[tuple[int, int]]:
    """The request windows ``[a, b)`` covering ``[start, end)``, aligned to the window size
    (so a resumed download asks the same windows), oldest first."""
    size = window_seconds(bar_seconds)
    first = start - start % size
    return [(max(a, start), min(a + size, end)) for a in range(first, end, size)]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bars of one window of one item (maybe none: IB has none there), to store."""

    symbol: str
    start: int
    end: int
    bars: list[Bar]


@dataclass(frozen=True, slots=True)
class Notice:
    sentence: str
    symbol: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    done: int  # requests answered or skipped
    total: int
    message: str


Item = Chunk | Notice | Progress


class HistoryDownload:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        items: Sequence[str],
        bar_seconds: int,
        start: int,
        end: int,
        use_rth: bool = False,
        skip: Collection[tuple[str, int]] = (),
        pacer: HistoryPacer | None = None,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.items = list(items)
        self.bar_seconds = bar_seconds
        self.start, self.end = start, end
        self.use_rth = use_rth
        self.skip = set(skip)  # (item, window start) already stored
        self.pacer = pacer or HistoryPacer()
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.with_bars: list[str] = []  # items that got (or already had) bars
        self.requests = 0
        self._errors: dict[str, tuple[int, str]] = {}

    def _on_error(self, req_id: int, code: int, message: str, symbol: str | None) -> None:
        if symbol is not None:
            self._errors[symbol] = (code, message)

    async def run(self) -> AsyncGenerator[Item, None]:
        # Nothing after now: IB has no bars from the future (and may refuse the end time).
        end = min(self.end, int(self.clock()))
        windows = plan_windows(self.start, end, self.bar_seconds) if end > self.start else []
        total = len(windows) * len(self.items)
        done = 0
        connection = IBConnection(
            host=self.host,
            port=self.port,
            client_id=self.client_id,
            connect_timeout=self.connect_timeout,
            on_error=self._on_error,
        )
        yield Progress(0, total, f"Connecting to IB (client id {self.client_id})…")
        try:
            client = await connection.connect()
        except ConnectFailure as err:
            yield Notice(f"IB history: {err}")
            return
        try:
            for item in self.items:
                contract, sentence = await self._contract(client, item)
                if contract is None:
                    yield Notice(f"{item}: {sentence} The other symbols go on.", item)
                    done += len(windows)
                    continue
                got_any = False
                for a, b in reversed(windows):  # newest first: the recent past matters most
                    done += 1
                    if (item, a) in self.skip:
                        got_any = True
                        continue
                    before = datetime.fromtimestamp(b, UTC)
                    yield Progress(
                        done - 1,
                        total,
                        f"Downloading {item} bars before {before:%Y-%m-%d %H:%M} UTC",
                    )
                    bars: list[Bar] = []
                    error: tuple[int, str] | None = None
                    async for got in self._ask(client, contract, a, b):
                        if isinstance(got, tuple):
                            bars, error = got
                        else:
                            yield got
                    if error is not None and not bars and not is_no_data(error):
                        sentence, permanent = describe_ib_error(*error)
                        if permanent or is_pacing(error):
                            yield Notice(f"{item}: {sentence} The other symbols go on.", item)
                            done += windows.index((a, b))  # the older windows: not asked
                            break
                        yield Notice(f"{item}: {sentence}", item)
                    got_any = got_any or bool(bars)
                    yield Chunk(item, a, b, bars)
                if got_any:
                    self.with_bars.append(item)
                elif contract is not None:
                    yield Notice(f"{item}: IB has no history bars in this period.", item)
            yield Progress(total, total, "Download finished.")
        finally:
            connection.disconnect()

    async def _contract(self, client: IBClient, item: str) -> tuple[IBContract | None, str]:
        try:
            instrument: Instrument = parse_item(item)
        except ItemError as err:
            return None, str(err)
        self._errors.pop(item, None)
        try:
            matches = await asyncio.wait_for(
                client.find_contracts(instrument, name=item), LOOKUP_TIMEOUT
            )
        except TimeoutError:
            return None, "IB did not answer the contract lookup."
        error = self._errors.pop(item, None)
        if not matches:
            code, text = error or (200, "")
            if code == 200:
                return None, unknown_sentence(instrument)
            return None, describe_ib_error(code, text)[0]
        try:
            chosen = choose_contract(
                instrument, matches, now_utc=datetime.fromtimestamp(self.clock(), UTC)
            )
        except ContractChoiceError as err:
            return None, str(err)
        return chosen, ""

    async def _ask(
        self, client: IBClient, contract: IBContract, a: int, b: int
    ) -> AsyncIterator[tuple[list[Bar], tuple[int, str] | None] | Notice | Progress]:
        """One window, asked again after a pacing refusal; yields between waits (so that the
        caller can stop), then ``(bars, error)``."""
        item = contract.symbol
        key = (contract.con_id, self.bar_seconds, b - a, b, self.use_rth)
        for attempt in range(PACING_RETRIES + 1):
            while (delay := self.pacer.delay(key, contract.con_id)) > 0:
                await asyncio.sleep(min(delay, 0.25))
                yield Progress(-1, -1, "")  # a chance to stop during the wait
            self.pacer.record(key, contract.con_id)
            self.requests += 1
            self._errors.pop(item, None)
            error: tuple[int, str] | None = None
            try:
                bars = await asyncio.wait_for(
                    client.history_bars(
                        contract,
                        bar_seconds=self.bar_seconds,
                        duration=b - a,
                        use_rth=self.use_rth,
                        end=b,
                    ),
                    REQUEST_TIMEOUT,
                )
            except TimeoutError:
                bars, error = [], (322, "no answer within a minute")
            else:
                error = self._errors.pop(item) if item in self._errors else None
            now = self.clock()
            bars = [bar for bar in bars if a <= bar.time < b and bar.close_time <= now]
            if bars or not is_pacing(error) or attempt == PACING_RETRIES:
                yield bars, error
                return
            wait = PACING_WAIT * (1 if attempt < 2 else 2 ** (attempt - 1))
            self.pacer.hold(wait)
            yield Notice(
                f"{item}: IB asked us to slow down (pacing violation); waiting {wait:g} s, "
                "then asking again.",
                item,
            )
