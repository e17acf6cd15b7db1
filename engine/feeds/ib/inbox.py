"""What IB's callbacks hand to the IB feed's loop, through one queue (the feed's inbox).

Items carry the connection generation they arrived on: the feed ignores those of an older
connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine.core.bars import Bar


@dataclass(frozen=True, slots=True)
class BarArrived:
    """A 5-second realtime bar."""

    generation: int
    symbol: str
    bar: Bar


@dataclass(frozen=True, slots=True)
class BadBar:
    """A realtime bar that can't be taken in (its time is out of range), and why."""

    generation: int
    symbol: str
    problem: str


@dataclass(frozen=True, slots=True)
class ErrorArrived:
    """An IB error or notice about the connection (``req_id`` -1) or a realtime subscription."""

    generation: int
    req_id: int
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection was lost."""

    generation: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The feed was closed."""


InboxItem = BarArrived | BadBar | ErrorArrived | Disconnected | Closed
Inbox = asyncio.Queue[InboxItem]
