"""The outbox sender: runs in the worker process beside the engine (DESIGN §7.4).

Each enabled destination with pending deliveries gets one task that sends its oldest pending
row, records the outcome, and goes on to the next only once that row is delivered or
failed: signal order per destination. A row stays pending until its outcome is stored, so a
worker killed mid-send sends it again on start (at least once; receivers de-duplicate by
``X-Scalp-Delivery``). The engine wakes the sender when it stores a signal; a poll every
second picks up rows written elsewhere and retries that came due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
from asgiref.sync import sync_to_async
from django.utils import timezone

from alerts import services, transport
from alerts.models import Delivery, Destination

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


def _event_of(delivery: Delivery) -> dict:
    assert delivery.signal is not None
    return dict(delivery.signal.to_event())


def _poll() -> list[services.Head]:
    """Each second: the engine's copy of the destinations' filters, then the queue heads."""
    services.destination_filters_refresh()
    return services.outbox_heads()


class Sender:
    def __init__(self, *, poll_seconds: float = POLL_SECONDS, timeout: float | None = None):
        self.poll_seconds = poll_seconds
        self.timeout = transport.TIMEOUT_SECONDS if timeout is None else timeout
        self.woken = asyncio.Event()
        self.tasks: dict[int, asyncio.Task] = {}

    def wake(self) -> None:
        """A signal was stored: look at the outbox now."""
        self.woken.set()

    async def run(self) -> None:
        """Until cancelled; a database or network problem is logged and retried."""
        async with transport.client() as client:
            try:
                while True:
                    self.woken.clear()
                    wait = self.poll_seconds
                    try:
                        wait = await self._start_due(client)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.exception("alerts sender: reading the outbox failed")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.woken.wait(), wait)
            finally:
                for task in self.tasks.values():
                    task.cancel()
                for task in self.tasks.values():
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _start_due(self, client: httpx.AsyncClient) -> float:
        """Start a task for each destination whose head is due; returns how long to sleep."""
        heads = await sync_to_async(_poll)()
        now = timezone.now()
        wait = self.poll_seconds
        for head in heads:
            task = self.tasks.get(head.destination_id)
            if task is not None and not task.done():
                continue
            due_in = (head.next_try_at - now).total_seconds()
            if due_in <= 0:
                task = asyncio.create_task(
                    self._drain(client, head.destination_id),
                    name=f"alerts-destination-{head.destination_id}",
                )
                # A finished task (drained, or its head must wait) makes the loop look again.
                task.add_done_callback(lambda _task: self.wake())
                self.tasks[head.destination_id] = task
            else:
                wait = min(wait, due_in)
        return max(wait, 0.01)

    async def _drain(self, client: httpx.AsyncClient, destination_id: int) -> None:
        """Send the destination's due rows in order; stop at one that must wait."""
        while True:
            delivery = await sync_to_async(services.outbox_head)(destination_id)
            if delivery is None or not delivery.destination.enabled:
                return
            if delivery.next_try_at > timezone.now():
                return  # the loop sleeps until it is due
            outcome = await self.try_once(client, delivery)
            settled = await sync_to_async(services.delivery_settle)(delivery.id, outcome)
            if settled.status == Delivery.Status.PENDING:
                return  # retried when due

    async def try_once(self, client: httpx.AsyncClient, delivery: Delivery) -> services.Outcome:
        request = transport.build(
            delivery.destination, _event_of(delivery), key=str(delivery.signal_id)
        )
        outcome = await transport.send(client, request, timeout=self.timeout)
        if not outcome.ok:
            logger.info(
                "alert %s to destination %s: %s",
                delivery.signal_id,
                delivery.destination_id,
                outcome.error,
            )
        return outcome


async def send_test(destination: Destination) -> Delivery:
    """ "Send test": one try now with a sample signal, logged, never retried."""
    async with transport.client() as client:
        request = transport.build(
            destination,
            services.sample_event(side=destination.side or "buy"),
            key=f"test-{time.time_ns()}",
        )
        outcome = await transport.send(client, request)
    return await sync_to_async(services.delivery_test_record)(destination, outcome)
