"""Outcome events across processes: a real Daphne, the real worker on the csv feed and real
`websockets` clients. A client that stays connected gets every stored outcome once, after its
signal, with the stored values; one that keeps hanging up and resuming with `since` gets no
outcome twice on one connection and none before its signal (docs/delivery.md, "Outcome
events")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
import websockets

from engine.services import settings_get
from signals.models import Outcome, Signal
from tests.conftest import Daphne, free_port
from tests.engine.helpers import (
    engine_state,
    start_worker,
    stop_worker,
    wait_until,
    write_bars,
    zigzag_rows,
)

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_765_895_400


class Client(threading.Thread):
    """A program in its own thread: every frame's event, resuming with the last signal id."""

    def __init__(self, url: str, token: str, *, drop_every: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.drop_every = url, token, drop_every
        self.events: list[dict] = []
        self.connections = 0
        self.stop_flag = threading.Event()

    def last_signal(self) -> int:
        return next((e["id"] for e in reversed(self.events) if e["event"] == "signal"), 0)

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        while not self.stop_flag.is_set():
            try:
                async with websockets.connect(
                    f"{self.url}?since={self.last_signal()}",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    max_queue=None,
                ) as ws:
                    self.connections += 1
                    self.events.append({"event": "connected"})
                    signals_here = 0
                    while not self.stop_flag.is_set():
                        try:
                            event = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                        except TimeoutError:
                            continue
                        self.events.append(event)
                        signals_here += event["event"] == "signal"
                        if self.drop_every and signals_here >= self.drop_every:
                            break  # hang up on purpose and resume with since
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.2)

    def outcomes(self, events: list[dict] | None = None) -> list[tuple]:
        return [
            (e["id"], e["horizon"], e["return_pct"], e["mfe_pct"], e["mae_pct"])
            for e in (self.events if events is None else events)
            if e["event"] == "outcome"
        ]

    def per_connection(self) -> list[list[tuple]]:
        """The outcomes each connection got."""
        parts: list[list[dict]] = []
        for event in self.events:
            if event["event"] == "connected":
                parts.append([])
            else:
                parts[-1].append(event)
        return [self.outcomes(part) for part in parts]

    def check_order(self) -> None:
        """Every outcome after its signal; signals once each, in id order."""
        sent: set[int] = set()
        signal_ids = []
        for event in self.events:
            if event["event"] == "signal":
                sent.add(event["id"])
                signal_ids.append(event["id"])
            elif event["event"] == "outcome":
                assert event["id"] in sent, f"outcome of {event['id']} before its signal"
        assert signal_ids == sorted(set(signal_ids))


def stored_outcomes() -> list[tuple]:
    return [
        (o.signal_id, o.label, o.return_pct, o.mfe_pct, o.mae_pct)
        for o in Outcome.objects.order_by("signal_id", "horizon")
    ]


def test_programs_get_each_outcome_once_after_its_signal(tmp_path):
    rows = sorted(
        zigzag_rows("AAPL", 190.0, 500, start=T0) + zigzag_rows("MSFT", 410.0, 500, start=T0),
        key=lambda r: (r[0], r[6]),
    )
    bars = write_bars(tmp_path / "bars.csv", rows)
    port = free_port()
    token = settings_get().feed_token
    daphne = Daphne(port, (tmp_path / "daphne.log").open("w"))
    daphne.start()
    url = f"ws://127.0.0.1:{port}/ws/signals/"
    steady, flaky = Client(url, token), Client(url, token, drop_every=2)
    steady.start()
    flaky.start()
    worker = start_worker(
        "--csv", str(bars), "--speed", "150", "--start", log_path=tmp_path / "worker.log",
        SCALP_WEB_URL=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    try:
        wait_until(lambda: (state := engine_state()) and state.message.startswith("Feed finished"),
                   timeout=90, what="the replay to finish")  # fmt: skip
        expected = stored_outcomes()
        with contextlib.suppress(AssertionError):  # the equality checks below say what's off
            wait_until(lambda: len(steady.outcomes()) >= len(expected), timeout=30)
    finally:
        steady.stop_flag.set()
        flaky.stop_flag.set()
        stop_worker(worker)
        daphne.stop()
    steady.join(5)
    flaky.join(5)
    assert len(expected) >= 20 and {o[1] for o in expected} == {"1m", "5m", "15m"}
    assert Signal.objects.count() >= 10
    steady.check_order()
    got = steady.outcomes()
    assert len(got) == len(set(got)) and set(got) == set(expected)
    flaky.check_order()
    # Once per connection; across a reconnect an outcome can come twice (its stored copy on
    # the way out of the old connection, its live event on the new one: docs/delivery.md).
    for connection in flaky.per_connection():
        assert len(connection) == len(set(connection))
    assert set(flaky.outcomes()) <= set(expected)
    assert flaky.connections >= 3
