"""The interface every bar feed (ib, demo, csv) implements for the engine worker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from engine.core.bars import Bar
from engine.core.instruments import ContractInfo


@dataclass(frozen=True, slots=True)
class BarEvent:
    """A closed bar of the run's bar size.

    ``warmup`` bars come from history: they fill indicators and cross memory but never emit.
    Bars may be re-delivered after a reconnect; the core skips bars it has already seen.
    """

    bar: Bar
    warmup: bool = False


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A change the user should see, as a sentence.

    ``state`` is one of the engine states a feed can cause: ``connecting``, ``warming_up``,
    ``running``, ``reconnecting``, ``error``; ``notice`` for information that changes no
    state (market closed, a farm message, one symbol refused while others run).
    ``symbol`` is set when the event concerns one symbol only. ``permanent`` says retrying
    cannot help (unknown symbol, no permission, client id in use after retries).
    """

    state: str
    message: str
    symbol: str | None = None
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class InstrumentEvent:
    """What the feed resolved a watchlist item to (once per run, again if it changes: a
    future rolled). ``symbol`` is the item text the bars carry."""

    symbol: str
    contract: ContractInfo


@dataclass(frozen=True, slots=True)
class MarketEvent:
    """An item's market state changed, per its own trading hours: ``line`` is the tile's
    sentence (``trading (CME Globex)``, ``closed, opens 09:00 Europe/Berlin``)."""

    symbol: str
    is_open: bool
    line: str


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """How an item's bars are flowing, when that changes: ``stream`` is ``streaming``,
    ``stale`` (no bars for a while though its market is open), ``closed`` (its market is
    closed: IB sends nothing) or ``refused`` (IB refuses its data: no permission, competing
    session, …). ``reason`` is the sentence for the user (empty while streaming); ``since``
    the feed-clock epoch seconds when this state began (a stale item shows its silence)."""

    symbol: str
    stream: str
    reason: str = ""
    since: float = 0.0


STREAM_STATES = ("streaming", "stale", "closed", "refused")

FeedEvent = BarEvent | StatusEvent | InstrumentEvent | MarketEvent | StreamEvent


class FeedError(Exception):
    """A feed failure with a sentence a user can act on."""

    def __init__(self, message: str, *, code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.code = code
        self.permanent = permanent


class Feed(ABC):
    """A source of closed bars for a set of symbols.

    The engine calls :meth:`events` once per run and consumes it until it ends (csv feed at
    end of file) or until the engine calls :meth:`close` (Stop, shutdown).
    """

    name: ClassVar[str]

    @abstractmethod
    def events(
        self, symbols: Sequence[str], *, bar_seconds: int, warmup_bars: int
    ) -> AsyncIterator[FeedEvent]:
        """Yield warm-up bars (at least ``warmup_bars`` per symbol when available), then live
        bars of ``bar_seconds`` (5 or 60), interleaved with status events. When the source
        gives fewer (IB's pacing, IB's history, the demo's cap), a notice says so."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and subscriptions; ``events`` must then finish promptly."""
