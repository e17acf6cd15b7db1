"""Cross-process delivery: a real Daphne, the real worker on the csv feed and real
`websockets` clients. Every stored signal reaches every client exactly once, in order, across
client reconnects with `since`, a Daphne restart and a worker restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import websockets

from engine.services import settings_get
from signals.models import Signal
from signals.stream import BEHIND_SECONDS, CLOSE_BEHIND, CLOSE_TOKEN
from tests.conftest import ROOT, Daphne, free_port, subprocess_env
from tests.engine.helpers import (
    engine_state,
    start_worker,
    stop_worker,
    wait_until,
    write_bars,
    zigzag_rows,
)
from tests.signals.helpers import T0 as SIGNAL_T0
from tests.signals.helpers import make_signal

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_765_895_400


class Client(threading.Thread):
    """A resuming consumer in its own thread and event loop; records every signal id."""

    def __init__(self, url: str, token: str, *, drop_every: int | None = None) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.drop_every = url, token, drop_every
        self.ids: list[int] = []
        self.connections = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        asyncio.run(self.main())

    async def main(self) -> None:
        while not self.stop_flag.is_set():
            since = self.ids[-1] if self.ids else 0
            try:
                async with websockets.connect(
                    f"{self.url}?since={since}",
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    # Unbounded: with websockets' default of 16 unread frames it stops reading,
                    # so after a hang-up with more unread it never sees Daphne's close reply
                    # and waits close_timeout (10 s) per hang-up.
                    max_queue=None,
                ) as ws:
                    self.connections += 1
                    received_here = 0
                    while not self.stop_flag.is_set():
                        try:
                            frame = await asyncio.wait_for(ws.recv(), 0.2)
                        except TimeoutError:
                            continue
                        event = json.loads(frame)
                        if event["event"] == "signal":
                            self.ids.append(event["id"])
                            received_here += 1
                            if self.drop_every and received_here >= self.drop_every:
                                break  # hang up on purpose and resume with since
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.2)


def test_every_signal_reaches_every_client_once_in_order_across_restarts(tmp_path):
    rows = sorted(
        zigzag_rows("AAPL", 190.0, 600, start=T0) + zigzag_rows("MSFT", 410.0, 600, start=T0),
        key=lambda r: (r[0], r[6]),
    )
    bars = write_bars(tmp_path / "bars.csv", rows)
    port = free_port()
    token = settings_get().feed_token
    daphne = Daphne(port, (tmp_path / "daphne.log").open("w"))
    daphne.start()
    web = {"SCALP_WEB_URL": f"http://127.0.0.1:{port}"}
    args = ["--csv", str(bars), "--speed", "200", "--start"]
    worker = start_worker(*args, log_path=tmp_path / "worker1.log", **web)
    url = f"ws://127.0.0.1:{port}/ws/signals/"
    steady, flaky = Client(url, token), Client(url, token, drop_every=3)
    steady.start()
    flaky.start()
    try:
        wait_until(lambda: Signal.objects.count() >= 10, what="first signals")
        daphne.stop()  # clients and the bridge lose Daphne; the worker keeps storing
        daphne.start()
        wait_until(lambda: Signal.objects.count() >= 25, what="signals after the Daphne restart")
        assert stop_worker(worker) == 0  # desired stays "running": the next worker resumes
        worker = start_worker("--csv", str(bars), "--speed", "200",
                              log_path=tmp_path / "worker2.log", **web)  # fmt: skip
        wait_until(lambda: engine_state().message.startswith("Feed finished"), timeout=60,
                   what="the replay to finish")  # fmt: skip
        expected = list(Signal.objects.order_by("id").values_list("id", flat=True))
        with contextlib.suppress(AssertionError):  # the equality checks below say what's off
            wait_until(lambda: len(steady.ids) >= len(expected) <= len(flaky.ids), timeout=90)
    finally:
        steady.stop_flag.set()
        flaky.stop_flag.set()
        stop_worker(worker)
        daphne.stop()
    steady.join(5)
    flaky.join(5)
    assert len(expected) >= 40
    assert steady.ids == expected
    assert flaky.ids == expected
    assert steady.connections >= 2, "the Daphne restart must have forced a reconnect"
    assert flaky.connections >= len(expected) // 3


def test_example_consumer_prints_signals_and_resumes(tmp_path, live_daphne):
    rows = [make_signal(n) for n in range(1, 4)]
    token = settings_get().feed_token
    state = tmp_path / "last_id.txt"
    state.write_text(str(rows[0].id))
    url = live_daphne.replace("http://", "ws://") + "/ws/signals/"
    proc = subprocess.Popen(
        [sys.executable, "examples/signal_consumer.py", "--url", url, "--token", token,
         "--state", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        # It prints, then records the id: give it the moment between the two.
        wait_until(lambda: state.read_text() == str(rows[2].id), timeout=10, what="state file")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert [e["id"] for e in lines] == [rows[1].id, rows[2].id]
    assert state.read_text() == str(rows[2].id)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_clients_that_stop_reading_cost_daphne_little_and_are_closed_with_4008(tmp_path):
    """Three programs ask for a 20 MB backlog and read nothing: Daphne holds only about
    MAX_UNSENT for each, closes them after BEHIND_SECONDS, and they resume by since."""
    values = {"PRICE": 100.25, "MA5": 100.0, "MA10": 99.75}
    Signal.objects.bulk_create(
        [Signal(time=SIGNAL_T0 + timedelta(seconds=5 * n), symbol="AAPL", price=100.25,
                rule_id=1, rule_name="MA Momentum", bar_seconds=5, values=values)
         for n in range(100_000)],
        batch_size=5000,
    )  # fmt: skip
    stored = list(Signal.objects.order_by("id").values_list("id", flat=True))
    log = tmp_path / "daphne.log"
    daphne = Daphne(free_port(), log.open("w"))
    daphne.start()
    url = f"ws://127.0.0.1:{daphne.port}/ws/signals/"
    headers = {"Authorization": f"Bearer {settings_get().feed_token}"}

    async def connect(since: int):
        # No pings from the client: it would time out waiting for a pong it never reads.
        return await websockets.connect(
            f"{url}?since={since}", additional_headers=headers, max_queue=1, ping_interval=None
        )

    async def read_until_closed(ws) -> tuple[list[int], int | None]:
        ids = []
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                ids.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["id"])
        return ids, ws.close_code

    async def read(ws, n: int) -> list[int]:
        return [json.loads(await asyncio.wait_for(ws.recv(), 10))["id"] for _ in range(n)]

    async def scenario():
        warm = await connect(stored[-3])  # the first socket loads templates, the ORM, …
        assert await read(warm, 2) == stored[-2:]
        await warm.close()
        base = rss_bytes(daphne.proc.pid)
        stalled = [await connect(0) for _ in range(3)]
        peak, until = base, time.monotonic() + BEHIND_SECONDS + 30
        # Only the server knows when it gave up on them: its log says so.
        while log.read_text().count(f"(code {CLOSE_BEHIND})") < 3 and time.monotonic() < until:
            peak = max(peak, rss_bytes(daphne.proc.pid))
            await asyncio.sleep(0.1)
        results = [await read_until_closed(ws) for ws in stalled]
        resumed = await connect(results[0][0][-1])
        rest = await read(resumed, len(stored) - len(results[0][0]))
        await resumed.close()
        return peak - base, results, rest

    try:
        growth, results, rest = asyncio.run(scenario())
    finally:
        daphne.stop()
    assert [code for _, code in results] == [CLOSE_BEHIND] * 3
    for ids, _ in results:
        assert ids == stored[: len(ids)], "a prefix of the backlog, in order, nothing twice"
    assert results[0][0] + rest == stored
    # Before flow control, three such readers grew Daphne by the whole backlog each (60 MB+).
    assert growth < 15 * 2**20, f"Daphne grew by {growth / 2**20:.1f} MB"


def test_rotating_the_token_in_another_process_closes_old_sockets_within_a_second(live_daphne):
    url = live_daphne.replace("http://", "ws://") + "/ws/signals/"
    old = settings_get().feed_token

    async def scenario():
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {old}"}
        ) as ws:
            await asyncio.sleep(0.5)  # connected and registered
            rotated = await asyncio.to_thread(
                subprocess.run, [sys.executable, "manage.py", "feedtoken", "--rotate"],
                cwd=ROOT, env=subprocess_env(), check=True, capture_output=True,
            )  # fmt: skip
            started = time.monotonic()
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            return ws.close_code, time.monotonic() - started, rotated.stdout.decode().strip()

    code, seconds, new = asyncio.run(scenario())
    assert new != old
    assert code == CLOSE_TOKEN
    assert seconds < 1.0
