"""The IB client library (ib_async, or ib_insync as fallback): the only module importing it.

:class:`IBClient` wraps the library's ``IB`` object with the few calls the feed and the
Settings page's connection test make, in the project's own types: a looked-up stock is a
:class:`StockContract`, a realtime-bar subscription a :class:`RealtimeBars`, bars are
:class:`~engine.core.bars.Bar`. Nothing of the library leaves this module.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

try:
    import ib_async as ibapi
except ImportError:  # pragma: no cover - exercised in the ib_insync virtualenv
    import ib_insync as ibapi  # type: ignore[no-redef]

from engine.core.bars import Bar

REALTIME_BAR_SECONDS = 5
# Bar length in seconds -> IB's name for it in history requests.
HISTORY_BAR_SIZES = {5: "5 secs", 60: "1 min", 3600: "1 hour"}

# (request id or -1, IB's error code, IB's text, the symbol of the request's contract or None)
ErrorCallback = Callable[[int, int, str, str | None], None]


@dataclass(frozen=True, slots=True)
class StockContract:
    """A stock found by IB's contract lookup. ``symbol`` is the name the run uses (and its
    bars carry); the other fields are IB's, sent back in the requests for it."""

    symbol: str
    con_id: int
    ib_symbol: str
    exchange: str
    currency: str
    primary_exchange: str = ""
    local_symbol: str = ""
    trading_class: str = ""


@dataclass(frozen=True, slots=True)
class RealtimeBars:
    """A realtime-bar subscription of one connection. IB's errors about it carry
    ``req_id``."""

    req_id: int
    symbol: str


class IBClient:
    """One connection to TWS / IB Gateway through the IB library; make a new one for every
    connection attempt. Callbacks run on the event loop, in the library's event handlers."""

    def __init__(self) -> None:
        self._ib = ibapi.IB()
        self._realtime: dict[int, ibapi.RealTimeBarList] = {}  # by request id

    # ---- connection ----------------------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        client_id: int,
        *,
        timeout: float,  # noqa: ASYNC109 - the library's handshake timeout
    ) -> None:
        """Connect read-only, fetching nothing at startup that the feed doesn't use. Raises
        what the library raises: TimeoutError, OSError (ConnectionRefusedError), ..."""
        ib = self._ib
        if hasattr(ibapi, "StartupFetchNONE"):  # ib_async only
            fetch = ibapi.StartupFetchNONE
            await ib.connectAsync(
                host, port, clientId=client_id, timeout=timeout, readonly=True, fetchFields=fetch
            )
        else:  # pragma: no cover - exercised in the ib_insync virtualenv
            await ib.connectAsync(host, port, clientId=client_id, timeout=timeout, readonly=True)

    def disconnect(self) -> None:
        """Close the connection (or the attempt); never raises."""
        self._realtime = {}
        with contextlib.suppress(Exception):
            self._ib.disconnect()
        with contextlib.suppress(Exception):
            self._ib.client.disconnect()

    def is_connected(self) -> bool:
        return bool(self._ib.isConnected())

    def server_version(self) -> int:
        return int(self._ib.client.serverVersion())

    def managed_accounts(self) -> list[str]:
        return [str(account) for account in self._ib.managedAccounts()]

    async def current_time(self) -> datetime:
        """TWS's clock (UTC)."""
        when: datetime = await self._ib.reqCurrentTimeAsync()
        return when

    # ---- callbacks -----------------------------------------------------------------------

    def on_error(self, callback: ErrorCallback) -> None:
        """Call ``callback(req_id, code, message, symbol)`` for every error and notice IB
        sends; ``req_id`` is -1 for the connection's own, ``symbol`` names the request's
        contract when there is one."""

        def relay(
            req_id: int, code: int, message: str, contract: ibapi.Contract | None = None
        ) -> None:
            symbol = getattr(contract, "symbol", None) if contract is not None else None
            callback(req_id, code, message, str(symbol) if symbol else None)

        self._ib.errorEvent += relay

    def on_api_error(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(message)`` on a socket or protocol error of the connection."""

        def relay(message: object) -> None:
            callback(str(message))

        self._ib.client.apiError += relay

    def on_disconnected(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when an established connection is lost or closed."""

        def relay() -> None:
            callback()

        self._ib.disconnectedEvent += relay

    # ---- contracts and bars --------------------------------------------------------------

    async def find_stocks(self, symbol: str, exchange: str, currency: str) -> list[StockContract]:
        """The stocks IB's contract lookup finds for ``symbol`` on ``exchange`` in
        ``currency``: none (IB's reason comes to the error callback), one, or several."""
        details = await self._ib.reqContractDetailsAsync(ibapi.Stock(symbol, exchange, currency))
        return [
            StockContract(
                symbol=symbol,
                con_id=int(c.conId),
                ib_symbol=str(c.symbol),
                exchange=exchange,
                currency=str(c.currency),
                primary_exchange=str(c.primaryExchange or ""),
                local_symbol=str(c.localSymbol or ""),
                trading_class=str(c.tradingClass or ""),
            )
            for c in (d.contract for d in details)
            if c and c.secType == "STK"
        ]

    async def history_bars(
        self,
        contract: StockContract,
        *,
        bar_seconds: int,
        duration: int,
        use_rth: bool,
        end: int | None = None,
    ) -> list[Bar]:
        """The TRADES bars of ``bar_seconds`` (5, 60 or 3600) of the ``duration`` seconds
        (whole days beyond one day) before ``end`` (epoch seconds; None: now, the bar still
        forming included), oldest first. IB's reason for no bars comes to the error
        callback."""
        span = f"{duration} S" if duration <= 86400 else f"{math.ceil(duration / 86400)} D"
        rows = await self._ib.reqHistoricalDataAsync(
            _native(contract),
            endDateTime="" if end is None else datetime.fromtimestamp(end, UTC),
            durationStr=span,
            barSizeSetting=HISTORY_BAR_SIZES[bar_seconds],
            whatToShow="TRADES",
            useRTH=use_rth,
            formatDate=2,
        )
        return [
            Bar(contract.symbol, _epoch(row.date), bar_seconds, float(row.open),
                float(row.high), float(row.low), float(row.close), float(row.volume))
            for row in rows or []
        ]  # fmt: skip

    def subscribe_realtime_bars(
        self, contract: StockContract, *, use_rth: bool, on_bar: Callable[[Bar], None]
    ) -> RealtimeBars:
        """Subscribe to 5-second TRADES bars; ``on_bar(bar)`` gets each new bar once."""
        bar_list = self._ib.reqRealTimeBars(
            _native(contract), REALTIME_BAR_SECONDS, "TRADES", use_rth
        )
        symbol = contract.symbol

        def on_update(updated: ibapi.RealTimeBarList, has_new_bar: bool) -> None:
            if not has_new_bar or not updated:
                return
            rt = updated[-1]
            # The library keeps every bar; the engine keeps its own bounded buffers.
            updated.clear()
            on_bar(_realtime_bar(symbol, rt))

        bar_list.updateEvent += on_update
        handle = RealtimeBars(int(bar_list.reqId), symbol)
        self._realtime[handle.req_id] = bar_list
        return handle

    def cancel_realtime_bars(self, handle: RealtimeBars) -> None:
        """Cancel a subscription of this connection; never raises (a lost connection has
        nothing left to cancel)."""
        bar_list = self._realtime.pop(handle.req_id, None)
        if bar_list is not None:
            with contextlib.suppress(Exception):
                self._ib.cancelRealTimeBars(bar_list)


def _native(contract: StockContract) -> ibapi.Contract:
    """The library's ``Contract`` for ``contract``."""
    return ibapi.Stock(
        contract.ib_symbol,
        contract.exchange,
        contract.currency,
        conId=contract.con_id,
        primaryExchange=contract.primary_exchange,
        localSymbol=contract.local_symbol,
        tradingClass=contract.trading_class,
    )


def _realtime_bar(symbol: str, rt: ibapi.RealTimeBar) -> Bar:
    """The library's 5-second ``RealTimeBar`` as our :class:`Bar`."""
    return Bar(
        symbol,
        int(rt.time.timestamp()),
        REALTIME_BAR_SECONDS,
        float(rt.open_),
        float(rt.high),
        float(rt.low),
        float(rt.close),
        float(rt.volume),
    )


def _epoch(value: object) -> int:
    """A history bar's time (``formatDate=2``) as epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.isdigit():
        return int(text)
    # A date (daily bars) never reaches here with formatDate=2 intraday bars.
    raise ValueError(f"unexpected IB bar time {value!r}")
