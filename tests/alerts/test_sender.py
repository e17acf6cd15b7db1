"""The sender in-process against real receivers and the real SQLite file: order per
destination, retries, one slow destination not holding up another, a sender stopped
mid-send sending again, disabled destinations waiting, and "Send test"."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from alerts import services
from alerts.models import Delivery
from alerts.sender import Sender, send_test
from signals.services import signal_record
from tests.alerts.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
WAIT = 30.0


@sync_to_async
def store(count: int, *, start: int = 0) -> list[int]:
    ids = []
    for n in range(start, start + count):
        row = signal_record(time=T0 + timedelta(seconds=5 * n), symbol="AAPL", price=100.0 + n,
                            rule_id=1, rule_name="Default", bar_seconds=5, values={})  # fmt: skip
        services.outbox_add(row)
        ids.append(row.id)
    return ids


@sync_to_async
def create(**data):
    return services.destination_create(**data)


@sync_to_async
def statuses(destination_id: int) -> list[tuple[int, str, int]]:
    return list(
        Delivery.objects.filter(destination_id=destination_id)
        .order_by("signal_id")
        .values_list("signal_id", "status", "tries")
    )


@contextlib.asynccontextmanager
async def sending(**kwargs):
    sender = Sender(poll_seconds=0.2, **kwargs)
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = await sync_to_async(predicate)()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def delivered_count(destination_id: int) -> int:
    return Delivery.objects.filter(destination_id=destination_id, status="delivered").count()


async def test_a_failing_head_holds_its_queue_in_order_while_others_flow():
    with Receiver() as flaky, Receiver() as healthy:
        flaky.script = ["500", "reset", "503"]
        slow = await create(kind="webhook", url=flaky.url)
        fast = await create(kind="webhook", url=healthy.url)
        ids = await store(4)
        async with sending():
            await until(lambda: delivered_count(fast.id) == 4, "the healthy destination")
            # The healthy one did not wait for the flaky one's retries (1 + 2 + 4 s).
            assert await sync_to_async(delivered_count)(slow.id) == 0
            await until(lambda: delivered_count(slow.id) == 4, "the flaky destination")
        keys = [int(r.headers["X-Scalp-Delivery"]) for r in flaky.requests]
        assert keys == [ids[0]] * 4 + ids[1:]  # three failed tries of the head, then in order
        assert [int(r.headers["X-Scalp-Delivery"]) for r in healthy.requests] == ids
        assert await statuses(slow.id) == [(ids[0], "delivered", 4)] + [
            (i, "delivered", 1) for i in ids[1:]
        ]


async def test_a_sender_stopped_mid_send_sends_again_and_a_refusal_moves_on():
    with Receiver(hang_seconds=2) as rx:
        rx.script = ["hang"]
        destination = await create(kind="webhook", url=rx.url)
        ids = await store(2)
        async with sending():
            await asyncio.to_thread(rx.wait_for, 1)
        # Stopped while the receiver was still thinking: nothing settled.
        assert await statuses(destination.id) == [(ids[0], "pending", 0), (ids[1], "pending", 0)]
        rx.script = ["400"]
        async with sending():
            await until(lambda: delivered_count(destination.id) == 1, "the second signal")
        keys = [int(r.headers["X-Scalp-Delivery"]) for r in rx.requests]
        assert keys == [ids[0], ids[0], ids[1]]
        rows = await statuses(destination.id)
        assert rows == [(ids[0], "failed", 1), (ids[1], "delivered", 1)]
        failed = await sync_to_async(Delivery.objects.get)(signal_id=ids[0])
        assert failed.error == "The receiver answered 400: receiver says no"


async def test_a_disabled_destination_waits_and_sends_when_enabled_again():
    with Receiver() as rx:
        destination = await create(kind="webhook", url=rx.url)
        await sync_to_async(services.destination_set_enabled)(destination, False)
        async with sending() as sender:
            # Rows written before it was disabled wait for it (new signals skip it).
            await sync_to_async(Delivery.objects.create)(
                destination=destination, signal_id=(await store(1))[0]
            )
            sender.wake()
            await asyncio.sleep(1.0)
            assert rx.requests == []
            await sync_to_async(services.destination_set_enabled)(destination, True)
            sender.wake()
            await until(lambda: delivered_count(destination.id) == 1, "the held delivery")


async def test_a_retry_is_scheduled_not_spun():
    with Receiver() as rx:
        rx.script = ["500", "500"]
        destination = await create(kind="webhook", url=rx.url)
        await store(1)
        async with sending():
            await until(lambda: delivered_count(destination.id) == 1, "the third try")
        first, second, third = (r.time for r in rx.requests)
        assert second - first >= 0.95  # backoff 1 s
        assert third - second >= 1.95  # then 2 s


async def test_send_test_logs_one_try_and_never_retries():
    with Receiver() as rx:
        destination = await create(kind="webhook", url=rx.url, secret="s" * 20)
        rx.script = ["503"]
        failed = await send_test(destination)
        assert (failed.status, failed.http_status, failed.signal_id) == ("failed", 503, None)
        ok = await send_test(destination)
        assert (ok.status, ok.http_status, ok.tries) == ("delivered", 200, 1)
        assert [r.headers["X-Scalp-Delivery"].startswith("test-") for r in rx.requests] == [
            True,
            True,
        ]
        assert b'"symbol":"TEST"' in rx.requests[0].body
