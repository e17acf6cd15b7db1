"""Where the worker sends events after storing them: the web side (bridge) or a log."""

from __future__ import annotations

import logging

from signals import events

logger = logging.getLogger(__name__)


class Publisher:
    """Receives every event the worker emits, in order. Must never raise into the engine."""

    async def publish(self, event: events.Event) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class LogPublisher(Publisher):
    """Logs signals and status changes (bars are too many to log)."""

    async def publish(self, event: events.Event) -> None:
        if event["event"] in (events.SIGNAL, events.STATUS):
            logger.info("%s", events.text(event))


class MemoryPublisher(Publisher):
    """Keeps events in a list (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []

    async def publish(self, event: events.Event) -> None:
        self.events.append(event)
