"""The IB client library (ib_async, or ib_insync as fallback): the only module importing it.

:class:`IBClient` wraps the library's ``IB`` object with the few calls the feed and the
Settings page's connection test make, in the project's own types: a looked-up instrument is
an :class:`IBContract` (stock, future month, FX pair, index, crypto coin), a realtime-bar
subscription a :class:`RealtimeBars`, bars are :class:`~engine.core.bars.Bar`. Nothing of the
library leaves this module.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

try:
    import ib_async as ibapi
except ImportError:  # pragma: no cover - exercised in the ib_insync virtualenv
    import ib_insync as ibapi  # type: ignore[no-redef]

from engine.core.bars import Bar
from engine.core.instruments import ContractInfo, Instrument

REALTIME_BAR_SECONDS = 5
# Bar length in seconds -> IB's name for it in history requests.
HISTORY_BAR_SIZES = {5: "5 secs", 60: "1 min", 3600: "1 hour"}
# IB's reqRealTimeBars takes TRADES, MIDPOINT, BID or ASK only (TWS API docs, "5 Second Real
# Time Bars"; API 9.2 release notes): crypto's AGGTRADES history has TRADES realtime bars.
REALTIME_WHAT_TO_SHOW = frozenset({"TRADES", "MIDPOINT", "BID", "ASK"})
# IB sends no volume for FX quotes (MIDPOINT) and index values: -1 or 0 on the wire.
NO_VOLUME_SEC_TYPES = frozenset({"CASH", "IND"})

# (request id or -1, IB's error code, IB's text, the name of the request's contract or None:
# the run's item text for the requests made here, IB's symbol otherwise)
ErrorCallback = Callable[[int, int, str, str | None], None]


@dataclass(frozen=True, slots=True)
class IBContract:
    """An instrument found by IB's contract lookup. ``symbol`` is the name the run uses (the
    watchlist item text, which its bars carry); the other fields are IB's: sent back in the
    requests for it, shown on the tile (``local_symbol``: ``ESZ6``, ``EUR.USD``), or read for
    its hours (``trading_hours``, ``liquid_hours`` in IB's format, ``time_zone_id``).
    ``last_trade_date`` is ``YYYYMMDD`` (futures), ``min_tick`` an exact decimal string."""

    symbol: str
    con_id: int
    ib_symbol: str
    exchange: str
    currency: str
    primary_exchange: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    sec_type: str = "STK"
    last_trade_date: str = ""
    multiplier: str = ""
    min_tick: str = ""
    trading_hours: str = ""
    liquid_hours: str = ""
    time_zone_id: str = ""
    long_name: str = ""
    market_name: str = ""

    @property
    def what_to_show(self) -> str:
        """IB's data type for this contract's history (TWS API docs, "Historical Data
        Types"): MIDPOINT for FX, AGGTRADES for crypto, TRADES for the rest."""
        return {"CASH": "MIDPOINT", "CRYPTO": "AGGTRADES"}.get(self.sec_type, "TRADES")

    @property
    def realtime_what_to_show(self) -> str:
        """IB's data type for this contract's 5-second realtime bars."""
        what = self.what_to_show
        return what if what in REALTIME_WHAT_TO_SHOW else "TRADES"

    @property
    def has_volume(self) -> bool:
        return self.sec_type not in NO_VOLUME_SEC_TYPES

    @property
    def info(self) -> ContractInfo:
        """The event's ``contract`` object (DESIGN §7.1)."""
        return ContractInfo(
            local_symbol=self.local_symbol or self.ib_symbol,
            sec_type=self.sec_type,
            exchange=self.exchange,
            currency=self.currency,
            min_tick=self.min_tick,
        )

    def describe(self) -> str:
        """``SAP (IBIS, EUR)``: how a candidate is named in a sentence."""
        name = self.local_symbol or self.ib_symbol
        where = (
            self.primary_exchange
            if self.exchange == "SMART" and self.primary_exchange
            else (self.exchange)
        )
        return f"{name} ({where}, {self.currency})"


# The first release's name for it (a stock was all it could be).
StockContract = IBContract


@dataclass(frozen=True, slots=True)
class RealtimeBars:
    """A realtime-bar subscription of one connection. IB's errors about it carry
    ``req_id``."""

    req_id: int
    symbol: str


def tick_text(value: object) -> str:
    """IB's minimum tick (a double) as an exact decimal string by its shortest repr:
    ``5e-05`` → ``"0.00005"``, ``0.25`` → ``"0.25"``; ``""`` when missing or not positive."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(number) or number <= 0:
        return ""
    try:
        tick = Decimal(repr(number))
    except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
        return ""
    text = format(tick.normalize(), "f")
    return text


class IBClient:
    """One connection to TWS / IB Gateway through the IB library; make a new one for every
    connection attempt. Callbacks run on the event loop, in the library's event handlers."""

    def __init__(self) -> None:
        self._ib = ibapi.IB()
        self._realtime: dict[int, ibapi.RealTimeBarList] = {}  # by request id
        # id(the library's Contract of a request) -> (it, the run's name for it): IB's errors
        # about a request carry its Contract; the feed wants the item text, not IB's symbol.
        self._names: dict[int, tuple[ibapi.Contract, str]] = {}

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
        self._names = {}
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
            callback(req_id, code, message, self._name_of(contract))

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

    def _name_of(self, contract: ibapi.Contract | None) -> str | None:
        """The run's name for a request's ``contract``, else IB's symbol, else None."""
        if contract is None:
            return None
        named = self._names.get(id(contract))
        if named is not None and named[0] is contract:
            return named[1]
        symbol = getattr(contract, "symbol", None)
        return str(symbol) if symbol else None

    @contextlib.contextmanager
    def _named(self, native: ibapi.Contract, name: str):  # type: ignore[no-untyped-def]
        self._names[id(native)] = (native, name)
        try:
            yield native
        finally:
            self._names.pop(id(native), None)

    async def find_contracts(
        self, instrument: Instrument, *, name: str | None = None
    ) -> list[IBContract]:
        """The contracts IB's contract lookup finds for ``instrument``: none (IB's reason
        comes to the error callback, named ``name``, by default the item text), one, or
        several (a future: every month IB lists; an ambiguous item: the candidates)."""
        name = name or instrument.text
        query = ibapi.Contract(
            secType=instrument.sec_type,
            symbol=instrument.symbol,
            exchange=instrument.exchange,
            currency=instrument.currency,
        )
        with self._named(query, name):
            details = await self._ib.reqContractDetailsAsync(query)
        found = []
        for d in details or []:
            c = d.contract
            if c is None or c.secType != instrument.sec_type:
                continue
            found.append(
                IBContract(
                    symbol=name,
                    con_id=int(c.conId),
                    ib_symbol=str(c.symbol),
                    # SMART stays SMART (IB routes); otherwise the exchange IB answered.
                    exchange=instrument.exchange
                    if instrument.exchange == "SMART"
                    else str(c.exchange or instrument.exchange),
                    currency=str(c.currency),
                    primary_exchange=str(c.primaryExchange or ""),
                    local_symbol=str(c.localSymbol or ""),
                    trading_class=str(c.tradingClass or ""),
                    sec_type=str(c.secType),
                    last_trade_date=str(c.lastTradeDateOrContractMonth or "")[:8],
                    multiplier=str(c.multiplier or ""),
                    min_tick=tick_text(d.minTick),
                    trading_hours=str(d.tradingHours or ""),
                    liquid_hours=str(d.liquidHours or ""),
                    time_zone_id=str(d.timeZoneId or ""),
                    long_name=str(d.longName or ""),
                    market_name=str(d.marketName or ""),
                )
            )
        return found

    async def find_stocks(self, symbol: str, exchange: str, currency: str) -> list[IBContract]:
        """The stocks IB's contract lookup finds for ``symbol`` on ``exchange`` in
        ``currency`` (the first release's call; :meth:`find_contracts` for any type)."""
        return await self.find_contracts(Instrument(symbol, "STK", exchange, currency), name=symbol)

    async def history_bars(
        self,
        contract: IBContract,
        *,
        bar_seconds: int,
        duration: int,
        use_rth: bool,
        end: int | None = None,
    ) -> list[Bar]:
        """The bars of ``bar_seconds`` (5, 60 or 3600) of the ``duration`` seconds (whole
        days beyond one day) before ``end`` (epoch seconds; None: now, the bar still forming
        included), oldest first, of the contract's data type (TRADES, MIDPOINT, AGGTRADES).
        IB's reason for no bars comes to the error callback."""
        span = f"{duration} S" if duration <= 86400 else f"{math.ceil(duration / 86400)} D"
        with self._named(_native(contract), contract.symbol) as native:
            rows = await self._ib.reqHistoricalDataAsync(
                native,
                endDateTime="" if end is None else datetime.fromtimestamp(end, UTC),
                durationStr=span,
                barSizeSetting=HISTORY_BAR_SIZES[bar_seconds],
                whatToShow=contract.what_to_show,
                useRTH=use_rth,
                formatDate=2,
            )
        has_volume = contract.has_volume
        return [
            Bar(contract.symbol, _epoch(row.date), bar_seconds, float(row.open),
                float(row.high), float(row.low), float(row.close), _volume(row.volume, has_volume))
            for row in rows or []
        ]  # fmt: skip

    def subscribe_realtime_bars(
        self, contract: IBContract, *, use_rth: bool, on_bar: Callable[[Bar], None]
    ) -> RealtimeBars:
        """Subscribe to 5-second bars of the contract's realtime data type (TRADES, or
        MIDPOINT for FX); ``on_bar(bar)`` gets each new bar once."""
        native = _native(contract)
        bar_list = self._ib.reqRealTimeBars(
            native, REALTIME_BAR_SECONDS, contract.realtime_what_to_show, use_rth
        )
        symbol = contract.symbol
        has_volume = contract.has_volume

        def on_update(updated: ibapi.RealTimeBarList, has_new_bar: bool) -> None:
            if not has_new_bar or not updated:
                return
            rt = updated[-1]
            # The library keeps every bar; the engine keeps its own bounded buffers.
            updated.clear()
            on_bar(_realtime_bar(symbol, rt, has_volume))

        bar_list.updateEvent += on_update
        handle = RealtimeBars(int(bar_list.reqId), symbol)
        self._realtime[handle.req_id] = bar_list
        self._names[id(native)] = (native, symbol)
        return handle

    def cancel_realtime_bars(self, handle: RealtimeBars) -> None:
        """Cancel a subscription of this connection; never raises (a lost connection has
        nothing left to cancel)."""
        bar_list = self._realtime.pop(handle.req_id, None)
        if bar_list is not None:
            self._names.pop(id(bar_list.contract), None)
            with contextlib.suppress(Exception):
                self._ib.cancelRealTimeBars(bar_list)


def _native(contract: IBContract) -> ibapi.Contract:
    """The library's ``Contract`` for ``contract`` (its conId decides; the rest as IB gave)."""
    return ibapi.Contract(
        secType=contract.sec_type,
        conId=contract.con_id,
        symbol=contract.ib_symbol,
        lastTradeDateOrContractMonth=contract.last_trade_date,
        multiplier=contract.multiplier,
        exchange=contract.exchange,
        primaryExchange=contract.primary_exchange,
        currency=contract.currency,
        localSymbol=contract.local_symbol,
        tradingClass=contract.trading_class,
    )


def _volume(value: object, has_volume: bool) -> float:
    """A bar's volume: 0 where the instrument has none (IB sends -1 or 0 for MIDPOINT bars
    and index values) and for IB's -1 ("not available") anywhere."""
    volume = float(value)  # type: ignore[arg-type]
    return volume if has_volume and volume > 0 else 0.0


def _realtime_bar(symbol: str, rt: ibapi.RealTimeBar, has_volume: bool = True) -> Bar:
    """The library's 5-second ``RealTimeBar`` as our :class:`Bar`."""
    return Bar(
        symbol,
        int(rt.time.timestamp()),
        REALTIME_BAR_SECONDS,
        float(rt.open_),
        float(rt.high),
        float(rt.low),
        float(rt.close),
        _volume(rt.volume, has_volume),
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
