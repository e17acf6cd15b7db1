"""examples/alert_receiver.py for real: a subprocess on a free port, alerts delivered to it by
the real ``alerts.transport`` and the real ``Sender``: a good signature is taken once, a
repeat of a delivery is acknowledged and not printed again (also after a restart), a bad
signature is refused with 401 and the sender marks that delivery failed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from alerts import services, transport
from alerts.models import Delivery, Destination
from alerts.sender import Sender
from signals.models import Signal
from signals.services import signal_record
from tests.conftest import ROOT, free_port, wait_for_port

SECRET = "receiver-secret-0123456789"
SCRIPT = ROOT / "examples" / "alert_receiver.py"


class ReceiverProcess:
    """The example run as a user runs it: its own process, the secret in the environment."""

    def __init__(self, seen: Path) -> None:
        self.seen, self.port = seen, free_port()
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ReceiverProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", str(self.port), "--seen", str(self.seen)],
            env={"SCALP_ALERT_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> list[str]:
        """Stop it; the lines it printed on stdout."""
        assert self.proc is not None
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        assert "Traceback" not in err, err
        return out.splitlines()


def make_signal(n: int, side: str = "buy") -> Signal:
    row = signal_record(
        time=datetime(2026, 3, 2, 15, 30, tzinfo=UTC) + timedelta(seconds=5 * n),
        symbol="AAPL", price=190.25 + n, rule_id=1, rule_name="MA Momentum", bar_seconds=5,
        values={"MA5": 190.1}, side=side,
    )  # fmt: skip
    assert row is not None
    return row


async def send(requests: list[transport.Request]) -> list[services.Outcome]:
    async with transport.client() as client:
        return [await transport.send(client, request) for request in requests]


@pytest.mark.django_db
def test_a_signed_alert_is_printed_once_even_after_a_restart(tmp_path):
    rx = ReceiverProcess(tmp_path / "seen.txt").start()
    try:
        hook = services.destination_create(kind="webhook", url=rx.url, secret=SECRET)
        first = make_signal(1)
        request = transport.build(hook, first.to_event(), key=str(first.id))
        outcomes = asyncio.run(send([request, request]))
    finally:
        lines = rx.stop()
    assert [(o.ok, o.http_status) for o in outcomes] == [(True, 200), (True, 200)]
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(first.to_event()))]
    assert (tmp_path / "seen.txt").read_text() == f"{first.id}\n"

    # A restart reads the ids it has seen: the resent alert is acknowledged, not printed.
    rx.start()
    try:
        second = make_signal(2, side="sell")
        outcomes = asyncio.run(
            send([request, transport.build(hook, second.to_event(), key=str(second.id))])
        )
    finally:
        lines = rx.stop()
    assert [(o.ok, o.http_status) for o in outcomes] == [(True, 200), (True, 200)]
    assert [json.loads(line)["id"] for line in lines] == [second.id]
    assert json.loads(lines[0])["side"] == "sell"


@pytest.mark.django_db
def test_a_bad_or_missing_signature_is_401_and_not_remembered(tmp_path):
    rx = ReceiverProcess(tmp_path / "seen.txt").start()
    try:
        wrong = services.destination_create(kind="webhook", url=rx.url, secret="not-the-secret")
        unsigned = services.destination_create(kind="webhook", url=rx.url)
        right = services.destination_create(kind="webhook", url=rx.url, secret=SECRET)
        signal = make_signal(1)
        event, key = signal.to_event(), str(signal.id)
        bad, missing, good = asyncio.run(
            send([transport.build(d, event, key=key) for d in (wrong, unsigned, right)])
        )
    finally:
        lines = rx.stop()
    assert "X-Scalp-Signature" not in transport.build(unsigned, event, key=key).headers
    for outcome in (bad, missing):
        assert (outcome.ok, outcome.retry, outcome.http_status) == (False, False, 401)
        assert outcome.error == "The receiver answered 401: bad signature"
    # The refused tries did not mark the id as seen: the signed one is still taken.
    assert (good.ok, good.http_status) == (True, 200)
    assert [json.loads(line)["id"] for line in lines] == [signal.id]


@pytest.mark.django_db(transaction=True)
def test_the_sender_delivers_to_it_and_marks_a_401_failed(tmp_path):
    rx = ReceiverProcess(tmp_path / "seen.txt").start()
    try:
        good = services.destination_create(kind="webhook", url=rx.url, secret=SECRET, name="ok")
        bad = services.destination_create(kind="webhook", url=rx.url, secret="wrong", name="bad")
        signals = [make_signal(n) for n in range(3)]
        for signal in signals:
            assert services.outbox_add(signal) == 2
        asyncio.run(run_sender_until_settled())
    finally:
        lines = rx.stop()
    rows = Delivery.objects.order_by("id")
    assert [(r.destination_id, r.signal_id, r.status, r.http_status, r.tries) for r in rows] == [
        (d.id, s.id, status, code, 1)
        for s in signals
        for d, status, code in ((good, "delivered", 200), (bad, "failed", 401))
    ]
    assert set(Delivery.objects.filter(destination=bad).values_list("error", flat=True)) == {
        "The receiver answered 401: bad signature"
    }
    bad.refresh_from_db()
    assert bad.failures_in_row == 3 and bad in services.destinations_failing()
    assert Destination.objects.get(pk=good.pk).failures_in_row == 0
    # In signal order, each once.
    assert [json.loads(line)["id"] for line in lines] == [s.id for s in signals]


async def run_sender_until_settled(deadline_s: float = 30.0) -> None:
    sender = Sender(poll_seconds=0.05)
    task = asyncio.create_task(sender.run())
    pending = sync_to_async(lambda: Delivery.objects.filter(status=Delivery.Status.PENDING).count())
    deadline = time.monotonic() + deadline_s
    try:
        while await pending():
            assert time.monotonic() < deadline, "deliveries still pending"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_it_refuses_to_start_without_a_secret():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", str(free_port())],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "Give the secret: --secret S or SCALP_ALERT_SECRET=S\n"
