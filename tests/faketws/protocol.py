"""The fake TWS's side of the API: handshake, startup sync and the requests it answers."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tests.faketws.model import (
    ANY_HISTORY_TYPE,
    ANY_REALTIME_TYPE,
    COMPETING_HISTORY,
    HISTORY_TYPES,
    PACING_VIOLATION,
    REALTIME_TYPES,
    Request,
    Subscription,
    SymbolSpec,
    history_of,
    java_double,
    pacing_violations,
)
from tests.faketws.wire import (
    MAX_SERVER_VERSION,
    Connection,
    parse_bar_size,
    parse_duration,
    parse_end_time,
)

if TYPE_CHECKING:
    from tests.faketws.gateway import FakeTWS

logger = logging.getLogger(__name__)


class Protocol:
    """Serves client connections for :class:`~tests.faketws.gateway.FakeTWS`, which mixes
    this in and holds the state below."""

    now: Callable[[], float]
    accounts: list[str]
    farm_notices: bool
    symbols: dict[str, SymbolSpec]
    realtime_denied: dict[str, tuple[int, str | None]]
    history_denied: dict[str, tuple[int, str | None]]
    rejected_client_ids: set[int]
    connections: dict[int, Connection]
    subscriptions: dict[tuple[int, int], Subscription]
    requests: list[Request]
    subscribe_log: list[Subscription]
    cancel_log: list[Subscription]
    history_log: list[dict[str, object]]
    details_log: list[dict[str, object]]
    connect_count: int
    history_delay: float
    enforce_pacing: bool
    history_refusals: list[tuple[int, str | None]]
    client_id_log: list[int]
    in_competing_session: Callable[[str], bool]
    _conn_ids: itertools.count[int]
    _tasks: set[asyncio.Task]
    _next_order_id: int
    _notify: Callable[[], Awaitable[None]]

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Connection(self, next(self._conn_ids), reader, writer)
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

    async def _serve(self, conn: Connection) -> None:
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

    def _start_api(self, conn: Connection, fields: list[str]) -> bool:
        client_id = int(fields[2])
        self.client_id_log.append(client_id)
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

    def _find(self, con_id: str, name: str) -> SymbolSpec | None:
        """The contract a history or realtime request names: by conId, else by name."""
        if con_id not in ("", "0"):
            found = next((s for s in self.symbols.values() if str(s.con_id) == con_id), None)
            if found is not None:
                return found
        return self.symbols.get(name) or next(
            (s for s in self.symbols.values() if s.ib_symbol == name), None
        )

    def _contract_details(self, conn: Connection, fields: list[str]) -> None:
        # 9,8,reqId,conId,symbol,secType,lastTradeDate,strike,right,multiplier,exchange,
        # primaryExchange,currency,localSymbol,tradingClass,includeExpired,...
        req_id = int(fields[2])
        con_id, symbol, sec_type, last = fields[3], fields[4].upper(), fields[5], fields[6]
        exchange, currency, local = fields[10], fields[12], fields[13]
        if con_id not in ("", "0"):
            found = [s for s in self.symbols.values() if str(s.con_id) == con_id]
        else:
            found = [
                s
                for s in self.symbols.values()
                if s.matches(symbol=symbol, sec_type=sec_type, exchange=exchange,
                             currency=currency, last_trade_date=last, local_symbol=local)
            ]  # fmt: skip
        if not found:
            conn.send_error(req_id, 200)
            return
        self.details_log.append({"req_id": req_id, "symbol": symbol, "sec_type": sec_type,
                                 "exchange": exchange, "currency": currency,
                                 "found": [s.symbol for s in found]})  # fmt: skip
        for spec in found:
            self._send_details(conn, req_id, spec, exchange)
        conn.send(52, 1, req_id)

    def _send_details(self, conn: Connection, req_id: int, spec: SymbolSpec, asked: str) -> None:
        """One contractData message (server >= 164: no version field), the fields as
        TWS-PROTOCOL.md lists them, filled per security type as TWS does."""
        trading, liquid, zone = spec.schedule(self.now())
        stock = spec.sec_type == "STK"
        exchange = (
            (asked or "SMART")
            if stock and (asked in ("", "SMART") or not spec.exchange)
            else (spec.exchange or asked or "SMART")
        )
        valid = f"SMART,{spec.primary_exchange}" if stock else spec.exchange
        month = spec.last_trade_date[:6]
        under = {"FUT": (spec.ib_symbol, "IND")}.get(spec.sec_type, ("", ""))
        conn.send(
            10, req_id, spec.ib_symbol, spec.sec_type, spec.last_trade_date, 0, "", exchange,
            spec.currency, spec.local_symbol, spec.market_name, spec.trading_class, spec.con_id,
            java_double(spec.min_tick), spec.multiplier, "ACTIVETIM,AD,ALERT,LMT,MKT,STP", valid,
            1, 0, spec.long_name or spec.symbol, spec.primary_exchange if stock else "", month,
            "Technology" if stock else "", "Computers" if stock else "",
            "Computers" if stock else "", zone, trading, liquid, "", "", 0,
            1, under[0], under[1], "26,26", spec.last_trade_date, "COMMON" if stock else "",
            "0.0001", "0.0001", "100" if stock else "1",
        )  # fmt: skip

    def _historical_data(self, conn: Connection, fields: list[str]) -> None:
        req_id = int(fields[1])
        symbol = fields[3].upper()
        con_id = fields[2]
        end_text, bar_size, duration = fields[15], fields[16], fields[17]
        use_rth, what, format_date = fields[18] == "1", fields[19], fields[20]
        spec = self._find(con_id, symbol)
        request = {
            "req_id": req_id, "symbol": spec.symbol if spec else symbol, "end": end_text,
            "bar_size": bar_size, "duration": duration, "use_rth": use_rth,
            "what_to_show": what, "format_date": format_date, "at": time.monotonic(),
            "sec_type": fields[4], "con_id": int(con_id or 0),
        }  # fmt: skip
        self.history_log.append(request)
        if spec is None:
            conn.send_error(req_id, 200)
            return
        if what not in HISTORY_TYPES.get(spec.sec_type, ANY_HISTORY_TYPE):
            conn.send_error(
                req_id, 162, "Historical Market Data Service error message:No data of type "
                f"{what} is available for the exchange '{spec.exchange or 'SMART'}' and the "
                f"security type '{spec.sec_type}'"
            )  # fmt: skip
            return
        if self.history_refusals:
            code, message = self.history_refusals.pop(0)
            conn.send_error(req_id, code, message)
            return
        if self.in_competing_session(spec.symbol):
            conn.send_error(req_id, 162, COMPETING_HISTORY)
            return
        denied = self.history_denied.get(spec.symbol)
        if denied:
            conn.send_error(req_id, denied[0], denied[1])
            return
        if self.enforce_pacing and any(
            index == len(self.history_log) - 1 for index, _ in pacing_violations(self.history_log)
        ):
            conn.send_error(req_id, 162, PACING_VIOLATION)
            return
        try:
            seconds = parse_bar_size(bar_size)
            span = parse_duration(duration)
            end = parse_end_time(end_text, self.now())
        except (ValueError, KeyError) as exc:
            conn.send_error(req_id, 321, f"Error validating request:-'bad' : cause - {exc}")
            return
        bars = history_of(spec, seconds)
        start = end - span
        # From ``end - duration`` to ``end``: bars ending at or before an explicit end; up to
        # now, the bar still forming included, without one.
        last = end - seconds if end_text.strip() else end - 1
        times = [b.time for b in bars]
        picked = bars[bisect.bisect_left(times, start) : bisect.bisect_right(times, last)]
        if not picked:
            conn.send_error(
                req_id, 162, "Historical Market Data Service error message:HMDS query returned "
                "no data: " + f"{spec.symbol}@{spec.exchange or 'SMART'} {what.title()}"
            )  # fmt: skip
            return

        def stamp(t: float) -> str:
            if format_date == "2":
                return str(int(t))
            return datetime.fromtimestamp(t, UTC).strftime("%Y%m%d %H:%M:%S")

        out: list[object] = [17, req_id, stamp(start), stamp(end), len(picked)]
        # Quotes (MIDPOINT, BID, ASK) and index values carry no volume: IB sends -1.
        no_volume = what not in ("TRADES", "AGGTRADES") or not spec.has_volume
        for b in picked:
            volume, wap, count = (-1, -1, -1) if no_volume else (b.volume, b.wap, b.count)
            out += [stamp(b.time), b.open, b.high, b.low, b.close, volume, wap, count]
        if self.history_delay > 0:
            asyncio.get_running_loop().call_later(self.history_delay, conn.send, *out)
        else:
            conn.send(*out)

    def _realtime_bars(self, conn: Connection, fields: list[str]) -> None:
        req_id = int(fields[2])
        con_id, symbol = fields[3], fields[4].upper()
        what, use_rth = fields[16], fields[17] == "1"
        spec = self._find(con_id, symbol)
        if spec is None:
            conn.send_error(req_id, 200)
            return
        sub = Subscription(conn.id, req_id, spec.symbol, what, use_rth, spec.con_id)
        self.subscribe_log.append(sub)
        denied = self.realtime_denied.get(spec.symbol)
        if denied:
            conn.send_error(req_id, denied[0], denied[1])
            return
        if what not in REALTIME_TYPES.get(spec.sec_type, ANY_REALTIME_TYPE):
            conn.send_error(
                req_id, 321, "Error validating request.-'bW' : cause - Invalid what to show: "
                f"{what} for security type {spec.sec_type}"
            )  # fmt: skip
            return
        self.subscriptions[(conn.id, req_id)] = sub
        if self.in_competing_session(spec.symbol):
            conn.send_error(req_id, 10197)

    def _cancel_realtime_bars(self, conn: Connection, fields: list[str]) -> None:
        sub = self.subscriptions.pop((conn.id, int(fields[2])), None)
        if sub is not None:
            self.cancel_log.append(sub)

    def _account_updates(self, conn: Connection, fields: list[str]) -> None:
        if fields[2] == "1":
            conn.send(54, 1, fields[3] or self.accounts[0])

    def _next_ids(self, conn: Connection, fields: list[str]) -> None:
        conn.send(9, 1, self._next_order_id)

    _handlers: dict[int, Callable[[FakeTWS, Connection, list[str]], bool | None]] = {
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
