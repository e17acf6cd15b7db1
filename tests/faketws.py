"""A fake TWS / IB Gateway that speaks the TWS API wire protocol, for tests.

The real client libraries (ib_async, ib_insync) connect to it over loopback TCP and use it
end to end: handshake and startup sync, contract details, historical bars (``formatDate=2``),
5-second realtime bars pushed on demand, error injection, dropped connections and restarts
on the same port. Field orders follow ``/work/shared/reference/TWS-PROTOCOL.md``.

In-process use (same event loop as the client under test)::

    gw = FakeTWS()
    gw.add_symbol("AAPL", con_id=265598, history={5: [(t, o, h, l, c, v), ...]})
    await gw.start()                       # gw.port is now a free port on 127.0.0.1
    ...                                    # connect a client to gw.port
    await gw.wait_subscribed("AAPL")       # a realtime-bar subscription is active
    await gw.push_bar("AAPL", t, o, h, l, c, v)   # to every subscription of AAPL
    gw.inject_error(-1, 1100, "Connectivity between IB and TWS has been lost.")
    await gw.drop_connections()            # close sockets, keep listening
    await gw.stop(); await gw.start()      # refuse connections, then listen on the SAME port

Scripting: ``deny_realtime(symbol, code)`` (354/420/10089 on subscribe),
``deny_history(symbol, code)`` (162), ``reject_client_id(id)`` (326 at connect; a client
id already connected is refused the same way, like TWS), ``history_delay`` (seconds before a
history reply goes out, to open race windows). Pushed bars are also stored as
5-second history (even while the gateway is stopped), so a client can backfill them; 1-minute
history is aggregated from the 5-second bars unless configured explicitly. ``now`` (a callable)
is the gateway clock used when a history request has no end time.

Separate process::

    python -m tests.faketws --port 0 --control-port 0 --script FILE.json

prints one JSON line ``{"port": N, "control_port": M}`` on stdout once listening. The script
file holds ``{"accounts": [...], "symbols": [{"symbol": "AAPL", "con_id": 1, ..., "history":
{"5": [[t, o, h, l, c, v], ...]}}], "deny_realtime": {"MSFT": 354}, "deny_history": {...},
"reject_client_ids": [...], "actions": [{"after": 1.5, "cmd": "push_bar", ...}]}``; every
key is optional. ``actions`` run in order, each ``after`` seconds after the previous one.

The control port takes one JSON object per line and answers one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Commands, with the same
arguments as the Python methods: ``push_bar``, ``inject_error``, ``drop``, ``stop``,
``start``, ``add_symbol``, ``deny_realtime``, ``deny_history``, ``reject_client_id``,
``wait_subscribed``, ``wait_cancelled``, ``state`` and ``shutdown``. :class:`ControlClient`
is a small async client for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

MAX_SERVER_VERSION = 178
MIN_SERVER_VERSION = 157
DEFAULT_TRADING_HOURS = (
    "20261123:0400-20261123:2000;20261124:0400-20261124:2000;20261125:0400-20261125:2000"
)
DEFAULT_LIQUID_HOURS = (
    "20261123:0930-20261123:1600;20261124:0930-20261124:1600;20261125:0930-20261125:1600"
)
DEFAULT_ERROR_TEXT = {
    162: "Historical Market Data Service error message:No market data permissions for NASDAQ STK",
    200: "No security definition has been found for the request",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed.",
    420: "Invalid Real-time Query:No market data permissions for NASDAQ STK",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    10089: "Requested market data requires additional subscription for API.",
    10197: "No market data during competing live session",
}

# (time, open, high, low, close, volume) or with wap and count appended
BarTuple = Sequence[float]


@dataclass
class HistBar:
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int

    @classmethod
    def of(cls, values: BarTuple | HistBar) -> HistBar:
        if isinstance(values, HistBar):
            return values
        t, o, h, low, c, v, *rest = values
        wap = float(rest[0]) if rest else round((o + h + low + c) / 4, 4)
        count = int(rest[1]) if len(rest) > 1 else 1
        return cls(int(t), float(o), float(h), float(low), float(c), float(v), wap, count)


@dataclass
class SymbolSpec:
    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    time_zone_id: str = "US/Eastern"
    trading_hours: str = DEFAULT_TRADING_HOURS
    liquid_hours: str = DEFAULT_LIQUID_HOURS
    long_name: str = ""
    min_tick: float = 0.01
    # bar seconds -> bars sorted by time (5 s bars also collect every pushed bar)
    history: dict[int, list[HistBar]] = field(default_factory=dict)


@dataclass
class Subscription:
    conn_id: int
    req_id: int
    symbol: str
    what_to_show: str
    use_rth: bool


@dataclass
class Request:
    """One message a client sent, kept for assertions."""

    conn_id: int
    msg_id: int
    fields: list[str]


def _frame(fields: Iterable[object]) -> bytes:
    payload = b"".join(_field(f) + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


def _field(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)).encode() if abs(value) < 1e15 else repr(value).encode()
    return str(value).encode()


_DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
_BAR_UNITS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600}


def parse_duration(text: str) -> int:
    """``"600 S"`` / ``"2 D"`` → seconds."""
    number, unit = text.split()
    return int(number) * _DURATION_UNITS[unit.upper()]


def parse_bar_size(text: str) -> int:
    """``"5 secs"`` / ``"1 min"`` / ``"1 hour"`` / ``"1 day"`` → seconds."""
    number, unit = text.split()
    if unit.startswith("day"):
        return int(number) * 86400
    return int(number) * _BAR_UNITS[unit]


def parse_end_time(text: str, now: float) -> float:
    """An IB ``endDateTime`` → epoch seconds (empty means now; a bare time counts as UTC)."""
    text = text.strip()
    if not text:
        return now
    if text.isdigit() and len(text) > 8:
        return float(text)
    match = re.fullmatch(r"(\d{8})[ -](\d\d:\d\d:\d\d)(?:\s+(\S+))?", text)
    if not match:
        raise ValueError(f"bad endDateTime {text!r}")
    day, clock, zone = match.groups()
    naive = datetime.strptime(day + clock, "%Y%m%d%H:%M:%S")  # noqa: DTZ007 - zone set below
    tz = UTC if zone in (None, "UTC", "GMT") else ZoneInfo(zone)
    return naive.replace(tzinfo=tz).timestamp()


def aggregate(bars: Sequence[HistBar], seconds: int) -> list[HistBar]:
    """Group bars into ``seconds``-long bars aligned to the epoch (partial last one kept)."""
    out: list[HistBar] = []
    for bar in bars:
        start = bar.time - bar.time % seconds
        if out and out[-1].time == start:
            last = out[-1]
            notional = last.wap * last.volume + bar.wap * bar.volume
            last.high = max(last.high, bar.high)
            last.low = min(last.low, bar.low)
            last.close = bar.close
            last.volume += bar.volume
            last.count += bar.count
            last.wap = round(notional / last.volume, 4) if last.volume else bar.wap
        else:
            out.append(HistBar(start, bar.open, bar.high, bar.low, bar.close, bar.volume,
                               bar.wap, bar.count))  # fmt: skip
    return out


class _Connection:
    def __init__(self, gw: FakeTWS, conn_id: int, reader, writer):
        self.gw = gw
        self.id = conn_id
        self.reader: asyncio.StreamReader = reader
        self.writer: asyncio.StreamWriter = writer
        self.client_id: int | None = None
        self.server_version = MAX_SERVER_VERSION
        self.ready = False

    def send(self, *fields: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(fields))

    def send_error(self, req_id: int, code: int, message: str | None = None) -> None:
        fields: list[object] = [4, 2, req_id, code, message or DEFAULT_ERROR_TEXT.get(code, "")]
        if self.server_version >= 166:
            fields.append("")
        self.send(*fields)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def read_frame(self) -> bytes:
        size = struct.unpack(">I", await self.reader.readexactly(4))[0]
        return await self.reader.readexactly(size)


class FakeTWS:
    """The scriptable gateway. All methods must run on the loop that called :meth:`start`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accounts: Sequence[str] = ("DU1234567",),
        now: Callable[[], float] = time.time,
        farm_notices: bool = True,
    ):
        self.host = host
        self.port = port
        self.accounts = list(accounts)
        self.now = now
        self.farm_notices = farm_notices
        self.symbols: dict[str, SymbolSpec] = {}
        self.realtime_denied: dict[str, tuple[int, str | None]] = {}
        self.history_denied: dict[str, tuple[int, str | None]] = {}
        self.rejected_client_ids: set[int] = set()
        self.connections: dict[int, _Connection] = {}
        self.subscriptions: dict[tuple[int, int], Subscription] = {}
        self.requests: list[Request] = []
        self.subscribe_log: list[Subscription] = []
        self.cancel_log: list[Subscription] = []
        self.history_log: list[dict[str, object]] = []
        self.connect_count = 0
        self.pushed: dict[str, list[HistBar]] = {}
        # Seconds before a history reply is sent (the data is taken when the request arrives).
        self.history_delay = 0.0
        self._server: asyncio.AbstractServer | None = None
        self._conn_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._changed: asyncio.Condition | None = None
        self._next_order_id = 1

    # ---- scripting ----------------------------------------------------------------------

    def add_symbol(
        self,
        symbol: str,
        *,
        con_id: int | None = None,
        history: dict[int, Iterable[BarTuple]] | None = None,
        **details: object,
    ) -> SymbolSpec:
        """Make ``symbol`` known (contract details); ``details`` are :class:`SymbolSpec`
        fields (``primary_exchange``, ``time_zone_id``, ``trading_hours``, ...)."""
        con_id = con_id or 100000 + len(self.symbols) + 1
        spec = SymbolSpec(symbol=symbol.upper(), con_id=con_id, **details)  # type: ignore[arg-type]
        self.symbols[spec.symbol] = spec
        for seconds, bars in (history or {}).items():
            self.set_history(symbol, int(seconds), bars)
        return spec

    def set_history(self, symbol: str, bar_seconds: int, bars: Iterable[BarTuple]) -> None:
        spec = self.symbols[symbol.upper()]
        spec.history[bar_seconds] = sorted((HistBar.of(b) for b in bars), key=lambda b: b.time)

    def deny_realtime(self, symbol: str, code: int = 354, message: str | None = None) -> None:
        """Answer realtime-bar requests for ``symbol`` with error ``code`` only."""
        self.realtime_denied[symbol.upper()] = (code, message)

    def deny_history(self, symbol: str, code: int = 162, message: str | None = None) -> None:
        """Answer history requests for ``symbol`` with error ``code`` (e.g. 162)."""
        self.history_denied[symbol.upper()] = (code, message)

    def reject_client_id(self, client_id: int) -> None:
        """Refuse ``client_id`` at connect with error 326, as if another app used it."""
        self.rejected_client_ids.add(int(client_id))

    def inject_error(
        self, req_id: int, code: int, message: str | None = None, *, conn_id: int | None = None
    ) -> int:
        """Send an error message to every ready connection (or one); returns how many."""
        sent = 0
        for conn in list(self.connections.values()):
            if conn.ready and (conn_id is None or conn.id == conn_id):
                conn.send_error(req_id, code, message)
                sent += 1
        return sent

    async def push_bar(
        self,
        symbol: str,
        time: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        *,
        wap: float | None = None,
        count: int = 1,
    ) -> int:
        """Deliver one 5-second bar (``time`` = its start, epoch UTC) to every active
        subscription of ``symbol`` and store it as history. Returns the number of
        subscriptions that received it."""
        symbol = symbol.upper()
        values: list[float] = [time, open, high, low, close, volume]
        if wap is not None:
            values += [wap, count]
        bar = HistBar.of(values)
        bar.count = count
        self.pushed.setdefault(symbol, []).append(bar)
        spec = self.symbols.get(symbol)
        if spec is not None:
            history = spec.history.setdefault(5, [])
            history[:] = [b for b in history if b.time != bar.time]
            history.append(bar)
            history.sort(key=lambda b: b.time)
        delivered = 0
        for sub in list(self.subscriptions.values()):
            conn = self.connections.get(sub.conn_id)
            if sub.symbol == symbol and conn is not None and conn.ready:
                conn.send(50, 3, sub.req_id, bar.time, bar.open, bar.high, bar.low, bar.close,
                          bar.volume, bar.wap, bar.count)  # fmt: skip
                delivered += 1
        for conn in self.connections.values():
            with contextlib.suppress(ConnectionError):
                await conn.writer.drain()
        return delivered

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> FakeTWS:
        """Listen on ``host:port`` (port 0 picks a free one, remembered for restarts)."""
        if self._server is not None:
            return self
        if self._changed is None:
            self._changed = asyncio.Condition()
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("fake TWS listening on %s:%s", self.host, self.port)
        return self

    async def stop(self) -> None:
        """Stop listening (new connections are refused) and close every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def drop_connections(self) -> None:
        """Close every client socket, as when TWS exits or restarts; keep listening."""
        for conn in list(self.connections.values()):
            conn.close()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._notify()

    async def __aenter__(self) -> FakeTWS:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- waiting ------------------------------------------------------------------------

    def active_subscriptions(self, symbol: str | None = None) -> list[Subscription]:
        return [
            s for s in self.subscriptions.values() if symbol is None or s.symbol == symbol.upper()
        ]

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` holds after some gateway event; TimeoutError if not."""
        assert self._changed is not None, "start() first"
        cond = self._changed

        async def waiter() -> None:
            async with cond:
                await cond.wait_for(predicate)

        await asyncio.wait_for(waiter(), timeout)

    async def wait_subscribed(
        self,
        symbol: str,
        *,
        total: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Subscription:
        """Wait for an active realtime subscription of ``symbol`` (and, with ``total``, for
        at least that many subscribe requests for it since the gateway was created)."""
        symbol = symbol.upper()

        def done() -> bool:
            if total is not None and sum(s.symbol == symbol for s in self.subscribe_log) < total:
                return False
            return bool(self.active_subscriptions(symbol))

        await self.wait_until(done, timeout)
        return self.active_subscriptions(symbol)[-1]

    async def wait_cancelled(
        self,
        symbol: str,
        *,
        total: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``total`` cancelRealTimeBars requests for ``symbol`` arrived."""
        symbol = symbol.upper()
        await self.wait_until(
            lambda: sum(s.symbol == symbol for s in self.cancel_log) >= total, timeout
        )

    async def wait_connections(
        self,
        count: int = 1,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``count`` clients completed the API handshake (since creation)."""
        await self.wait_until(lambda: self.connect_count >= count, timeout)

    async def _notify(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            self._changed.notify_all()

    # ---- protocol -----------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Connection(self, next(self._conn_ids), reader, writer)
        self.connections[conn.id] = conn
        try:
            await self._serve(conn)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            logger.exception("fake TWS connection %s failed", conn.id)
        finally:
            self.connections.pop(conn.id, None)
            for key in [k for k in self.subscriptions if k[0] == conn.id]:
                del self.subscriptions[key]
            conn.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)
            await self._notify()

    async def _serve(self, conn: _Connection) -> None:
        prefix = await conn.reader.readexactly(4)
        if prefix != b"API\0":
            raise ConnectionError(f"bad greeting {prefix!r}")
        greeting = (await conn.read_frame()).decode()
        match = re.match(r"v(\d+)(?:\.\.(\d+))?", greeting)
        if not match:
            raise ConnectionError(f"bad version range {greeting!r}")
        client_max = int(match.group(2) or match.group(1))
        conn.server_version = min(client_max, MAX_SERVER_VERSION)
        stamp = datetime.fromtimestamp(self.now(), UTC).strftime("%Y%m%d %H:%M:%S UTC")
        conn.send(conn.server_version, stamp)
        while True:
            fields = (await conn.read_frame()).decode().split("\0")
            if fields and fields[-1] == "":
                fields.pop()
            if not fields:
                continue
            msg_id = int(fields[0])
            self.requests.append(Request(conn.id, msg_id, fields))
            handler = self._handlers.get(msg_id)
            if handler is not None:
                keep_open = handler(self, conn, fields)
                if keep_open is False:
                    await conn.writer.drain()
                    return
            await conn.writer.drain()
            await self._notify()

    def _start_api(self, conn: _Connection, fields: list[str]) -> bool:
        client_id = int(fields[2])
        in_use = any(
            c.client_id == client_id and c.ready and c is not conn
            for c in self.connections.values()
        )
        if client_id in self.rejected_client_ids or in_use:
            conn.send_error(-1, 326)
            return False
        conn.client_id = client_id
        conn.ready = True
        self.connect_count += 1
        conn.send(15, 1, ",".join(self.accounts))
        conn.send(9, 1, self._next_order_id)
        if self.farm_notices:
            conn.send_error(-1, 2104, "Market data farm connection is OK:usfarm")
            conn.send_error(-1, 2106, "HMDS data farm connection is OK:ushmds")
            conn.send_error(-1, 2158, "Sec-def data farm connection is OK:secdefnj")
        return True

    def _contract_details(self, conn: _Connection, fields: list[str]) -> None:
        req_id = int(fields[2])
        con_id, symbol, sec_type = fields[3], fields[4].upper(), fields[5]
        exchange, currency = fields[10], fields[12]
        spec = self.symbols.get(symbol)
        if spec is None and con_id not in ("", "0"):
            spec = next((s for s in self.symbols.values() if str(s.con_id) == con_id), None)
        if spec is None or sec_type not in ("", "STK") or (currency and currency != spec.currency):
            conn.send_error(req_id, 200)
            return
        exchange = exchange or "SMART"
        conn.send(
            10, req_id, spec.symbol, "STK", "", 0, "", exchange, spec.currency, spec.symbol,
            "NMS", "NMS", spec.con_id, spec.min_tick, "", "ACTIVETIM,AD,ALERT,LMT,MKT,STP",
            f"SMART,{spec.primary_exchange}", 1, 0, spec.long_name or spec.symbol,
            spec.primary_exchange, "", "Technology", "Computers", "Computers",
            spec.time_zone_id, spec.trading_hours, spec.liquid_hours, "", "", 0,
            1, "", "", "26,26", "", "COMMON", "0.0001", "0.0001", "100",
        )  # fmt: skip
        conn.send(52, 1, req_id)

    def _historical_data(self, conn: _Connection, fields: list[str]) -> None:
        req_id = int(fields[1])
        symbol = fields[3].upper()
        con_id = fields[2]
        end_text, bar_size, duration = fields[15], fields[16], fields[17]
        use_rth, what, format_date = fields[18] == "1", fields[19], fields[20]
        spec = self.symbols.get(symbol) or next(
            (s for s in self.symbols.values() if str(s.con_id) == con_id), None
        )
        self.history_log.append(
            {"req_id": req_id, "symbol": symbol, "end": end_text, "bar_size": bar_size,
             "duration": duration, "use_rth": use_rth, "what_to_show": what,
             "format_date": format_date}
        )  # fmt: skip
        if spec is None:
            conn.send_error(req_id, 200)
            return
        denied = self.history_denied.get(spec.symbol)
        if denied:
            conn.send_error(req_id, denied[0], denied[1])
            return
        try:
            seconds = parse_bar_size(bar_size)
            span = parse_duration(duration)
            end = parse_end_time(end_text, self.now())
        except (ValueError, KeyError) as exc:
            conn.send_error(req_id, 321, f"Error validating request:-'bad' : cause - {exc}")
            return
        if seconds in spec.history:
            bars = spec.history[seconds]
        else:
            bars = aggregate(spec.history.get(5, []), seconds)
        start = end - span
        picked = [b for b in bars if start <= b.time < end]
        if not picked:
            conn.send_error(
                req_id, 162, "Historical Market Data Service error message:HMDS query returned "
                "no data: " + f"{spec.symbol}@SMART Trades"
            )  # fmt: skip
            return

        def stamp(t: float) -> str:
            if format_date == "2":
                return str(int(t))
            return datetime.fromtimestamp(t, UTC).strftime("%Y%m%d %H:%M:%S")

        out: list[object] = [17, req_id, stamp(start), stamp(end), len(picked)]
        for b in picked:
            out += [stamp(b.time), b.open, b.high, b.low, b.close, b.volume, b.wap, b.count]
        if self.history_delay > 0:
            asyncio.get_running_loop().call_later(self.history_delay, conn.send, *out)
        else:
            conn.send(*out)

    def _realtime_bars(self, conn: _Connection, fields: list[str]) -> None:
        req_id = int(fields[2])
        con_id, symbol = fields[3], fields[4].upper()
        what, use_rth = fields[16], fields[17] == "1"
        spec = self.symbols.get(symbol) or next(
            (s for s in self.symbols.values() if str(s.con_id) == con_id), None
        )
        if spec is None:
            conn.send_error(req_id, 200)
            return
        sub = Subscription(conn.id, req_id, spec.symbol, what, use_rth)
        self.subscribe_log.append(sub)
        denied = self.realtime_denied.get(spec.symbol)
        if denied:
            conn.send_error(req_id, denied[0], denied[1])
            return
        self.subscriptions[(conn.id, req_id)] = sub

    def _cancel_realtime_bars(self, conn: _Connection, fields: list[str]) -> None:
        sub = self.subscriptions.pop((conn.id, int(fields[2])), None)
        if sub is not None:
            self.cancel_log.append(sub)

    def _account_updates(self, conn: _Connection, fields: list[str]) -> None:
        if fields[2] == "1":
            conn.send(54, 1, fields[3] or self.accounts[0])

    def _next_ids(self, conn: _Connection, fields: list[str]) -> None:
        conn.send(9, 1, self._next_order_id)

    _handlers: dict[int, Callable[[FakeTWS, _Connection, list[str]], bool | None]] = {
        71: _start_api,
        61: lambda self, conn, f: conn.send(62, 1),
        5: lambda self, conn, f: conn.send(53, 1),
        16: lambda self, conn, f: conn.send(53, 1),
        99: lambda self, conn, f: conn.send(102),
        6: _account_updates,
        76: lambda self, conn, f: conn.send(74, 1, f[2]),
        7: lambda self, conn, f: conn.send(55, 1, f[2]),
        8: _next_ids,
        17: lambda self, conn, f: conn.send(15, 1, ",".join(self.accounts)),
        49: lambda self, conn, f: conn.send(49, 1, int(self.now())),
        9: _contract_details,
        20: _historical_data,
        50: _realtime_bars,
        51: _cancel_realtime_bars,
    }

    # ---- snapshot for the control channel ----------------------------------------------

    def state(self) -> dict[str, object]:
        return {
            "port": self.port,
            "listening": self.listening,
            "connections": len(self.connections),
            "connect_count": self.connect_count,
            "subscriptions": [
                {"symbol": s.symbol, "req_id": s.req_id, "use_rth": s.use_rth}
                for s in self.subscriptions.values()
            ],
            "subscribe_count": len(self.subscribe_log),
            "cancel_count": len(self.cancel_log),
            "history_requests": len(self.history_log),
        }


# ---- separate process: script file and control socket -------------------------------------


def load_script(gw: FakeTWS, script: dict) -> list[dict]:
    """Configure ``gw`` from a script dict; returns its ``actions`` list."""
    if "accounts" in script:
        gw.accounts = list(script["accounts"])
    for item in script.get("symbols", []):
        item = dict(item)
        history = {int(k): v for k, v in item.pop("history", {}).items()}
        gw.add_symbol(item.pop("symbol"), history=history, **item)
    for symbol, code in script.get("deny_realtime", {}).items():
        gw.deny_realtime(symbol, int(code))
    for symbol, code in script.get("deny_history", {}).items():
        gw.deny_history(symbol, int(code))
    for client_id in script.get("reject_client_ids", []):
        gw.reject_client_id(int(client_id))
    return list(script.get("actions", []))


async def run_command(gw: FakeTWS, command: dict) -> dict[str, object]:
    """Execute one control command (a dict with ``cmd`` and the method's arguments)."""
    args = dict(command)
    cmd = args.pop("cmd", None)
    args.pop("after", None)
    if cmd == "push_bar":
        bar = [args.pop(k) for k in ("time", "open", "high", "low", "close", "volume")]
        symbol = args.pop("symbol")
        return {"delivered": await gw.push_bar(symbol, *bar, **args)}
    if cmd == "inject_error":
        return {"sent": gw.inject_error(int(args.get("req_id", -1)), int(args["code"]),
                                        args.get("message"))}  # fmt: skip
    if cmd == "drop":
        await gw.drop_connections()
    elif cmd == "stop":
        await gw.stop()
    elif cmd == "start":
        await gw.start()
    elif cmd == "add_symbol":
        history = {int(k): v for k, v in args.pop("history", {}).items()}
        gw.add_symbol(args.pop("symbol"), history=history, **args)
    elif cmd == "deny_realtime":
        gw.deny_realtime(args["symbol"], int(args.get("code", 354)), args.get("message"))
    elif cmd == "deny_history":
        gw.deny_history(args["symbol"], int(args.get("code", 162)), args.get("message"))
    elif cmd == "reject_client_id":
        gw.reject_client_id(int(args["client_id"]))
    elif cmd == "wait_subscribed":
        await gw.wait_subscribed(args["symbol"], total=args.get("total"),
                                 timeout=float(args.get("timeout", 5)))  # fmt: skip
    elif cmd == "wait_cancelled":
        await gw.wait_cancelled(args["symbol"], total=int(args.get("total", 1)),
                                timeout=float(args.get("timeout", 5)))  # fmt: skip
    elif cmd in ("state", "shutdown"):
        pass
    else:
        raise ValueError(f"unknown command {cmd!r}")
    return gw.state()


class ControlServer:
    """Line-based JSON control socket for a gateway running in another process."""

    def __init__(self, gw: FakeTWS, host: str = "127.0.0.1", port: int = 0):
        self.gw = gw
        self.host = host
        self.port = port
        self.shutdown = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while line := await reader.readline():
                try:
                    command = json.loads(line)
                    reply: dict[str, object] = {"ok": True, **await run_command(self.gw, command)}
                except TimeoutError:
                    reply = {"ok": False, "error": "timeout"}
                except Exception as exc:  # report to the controlling test, keep serving
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if command.get("cmd") == "shutdown":
                    self.shutdown.set()
        finally:
            writer.close()


class ControlClient:
    """Async client for :class:`ControlServer`: ``await ctl.call("push_bar", symbol=...)``."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, cmd: str, **args: object) -> dict:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self._writer.drain()
        reply = json.loads(await self._reader.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"fake TWS {cmd}: {reply.get('error')}")
        return reply

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def _run_actions(gw: FakeTWS, actions: list[dict]) -> None:
    for action in actions:
        await asyncio.sleep(float(action.get("after", 0)))
        try:
            await run_command(gw, action)
        except Exception:
            logger.exception("fake TWS action %s failed", action)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faketws", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--script", help="JSON file with symbols, history, errors, actions")
    parser.add_argument("-v", "--verbose", action="store_true")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if opts.verbose else logging.WARNING)
    script: dict = {}
    if opts.script:
        with open(opts.script, encoding="utf-8") as fh:
            script = json.load(fh)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(opts.host, opts.port, opts.control_port, script))


async def serve(host: str, port: int, control_port: int, script: dict) -> None:
    """Run a gateway configured by ``script`` plus its control socket until ``shutdown``."""
    gw = FakeTWS(host=host, port=port)
    actions = load_script(gw, script)
    await gw.start()
    control = ControlServer(gw, host, control_port)
    await control.start()
    print(json.dumps({"port": gw.port, "control_port": control.port}), flush=True)
    runner = asyncio.create_task(_run_actions(gw, actions))
    try:
        await control.shutdown.wait()
    finally:
        runner.cancel()
        await control.close()
        await gw.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
