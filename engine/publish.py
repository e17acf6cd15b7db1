"""Where the worker sends events after storing them: the web side (bridge) or a log."""

from __future__ import annotations

import json
import logging

logger = logging.getLogger(__name__)


class Publisher:
    """Receives every event the worker emits, in order. Must never raise into the engine."""

    async def publish(self, event: dict) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class LogPublisher(Publisher):
    """Logs signals and status changes (bars are too many to log)."""

    async def publish(self, event: dict) -> None:
        if event.get("event") in {"signal", "status"}:
            logger.info("%s", json.dumps(event, separators=(",", ":")))


class MemoryPublisher(Publisher):
    """Keeps events in a list (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def publish(self, event: dict) -> None:
        self.events.append(event)
