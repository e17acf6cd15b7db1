"""The TWS API wire format: length-prefixed frames, one client connection, field parsing."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from tests.faketws.gateway import FakeTWS

MAX_SERVER_VERSION = 178
MIN_SERVER_VERSION = 157
DEFAULT_ERROR_TEXT = {
    162: "Historical Market Data Service error message:No market data permissions for NASDAQ STK",
    200: "No security definition has been found for the request",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed.",
    420: "Invalid Real-time Query:No market data permissions for NASDAQ STK",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    10089: "Requested market data requires additional subscription for API.",
    10197: "No market data during competing live session",
    10225: "Bust event occurred, current subscription is deactivated. Please resubscribe "
    "real-time bars immediately.",
}


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


class Connection:
    """One client socket of the gateway."""

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
