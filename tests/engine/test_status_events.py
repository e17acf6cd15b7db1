"""Status events go out when the state or its message changes, not on every repeat (a feed
retrying TWS every 2 s says the same sentence each time); the heartbeat is still written."""

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from engine.feeds.base import StatusEvent
from engine.models import EngineState
from engine.services import engine_events_latest
from engine.worker.engine import Engine
from engine.worker.publish import MemoryPublisher
from tests.engine.helpers import engine_state

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = "TWS refused the connection at 127.0.0.1:7497. Retrying in 2 s."


def statuses(publisher: MemoryPublisher) -> list[tuple[str, str]]:
    return [(e["state"], e["message"]) for e in publisher.events if e["event"] == "status"]


def test_a_repeated_status_is_published_once_and_the_heartbeat_still_moves():
    publisher = MemoryPublisher()
    engine = Engine(publisher=publisher)
    old = timezone.now() - timedelta(seconds=30)

    async def first() -> None:
        await engine.on_status(StatusEvent("connecting", "Connecting to TWS…"))
        for _ in range(5):
            await engine.on_status(StatusEvent("connecting", REFUSED))

    async def then() -> None:
        await engine.on_status(StatusEvent("connecting", REFUSED))
        await engine.on_status(StatusEvent("running", "Receiving bars."))
        await engine.on_status(StatusEvent("notice", "NYSE is closed."))
        await engine.on_status(StatusEvent("notice", "NYSE is closed."))
        await engine.on_status(StatusEvent("connecting", REFUSED))

    asyncio.run(first())
    EngineState.objects.filter(pk=1).update(heartbeat=old)
    asyncio.run(then())
    assert statuses(publisher) == [
        ("connecting", "Connecting to TWS…"),
        ("connecting", REFUSED),
        ("running", "Receiving bars."),
        ("running", "NYSE is closed."),
        ("connecting", REFUSED),
    ]
    state = engine_state()
    assert (state.state, state.message) == ("connecting", REFUSED)
    assert state.heartbeat > old
    # The engine events log tells the same story, a line per published status.
    assert [(e.state, e.message) for e in engine_events_latest(50)] == statuses(publisher)
