"""Scale-out is configuration: with SCALP_REDIS_URL two Daphnes share one channel layer
(a real redis-server on loopback), so a client on one gets what the worker sends the other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
import websockets

from engine.services import settings_get
from signals.models import Signal
from signals.services import signal_record
from tests.conftest import ROOT, free_port, subprocess_env, wait_for_port
from tests.engine.helpers import engine_state, start_worker, stop_worker, wait_until, write_bars
from tests.signals.helpers import T0, engine_token

pytestmark = pytest.mark.django_db(transaction=True)


class RedisServer:
    """A real redis-server on loopback (no persistence: a restart loses every key, group
    memberships included) that a test can stop and start again on the same port."""

    def __init__(self, workdir) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it installs it).")
        self.workdir, self.port, self.proc = workdir, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)


@contextlib.contextmanager
def redis_running(workdir) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path):
    with redis_running(tmp_path) as server:
        yield server


@pytest.fixture
def redis_url(redis_server):
    return redis_server.url


def start_daphne(port: int, env: dict, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "scalpsite.asgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port, proc=proc)
    return proc


def test_two_daphnes_on_redis_deliver_to_clients_on_either(tmp_path, redis_url):
    rows = []
    for i in range(200):
        price = round(100 + (0.05 * i if i % 40 < 25 else 0.05 * i - 3), 2)
        rows.append((1_765_895_400 + 5 * i, price, price, price, price, 100, "AAPL"))
    bars = write_bars(tmp_path / "bars.csv", rows)
    env = subprocess_env(SCALP_REDIS_URL=redis_url)
    port_a, port_b = free_port(), free_port()
    log = (tmp_path / "daphne.log").open("w")
    daphnes = [start_daphne(port_a, env, log), start_daphne(port_b, env, log)]
    token = settings_get().feed_token
    received: dict[str, list[int]] = {"a": [], "b": []}
    stop = asyncio.Event()

    async def client(name: str, port: int, ready: asyncio.Event):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/signals/",
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as ws:
            ready.set()
            while not stop.is_set():
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    continue
                if event["event"] == "signal":
                    received[name].append(event["id"])

    async def scenario():
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(client("a", port_a, ready_a)),
                 asyncio.create_task(client("b", port_b, ready_b))]  # fmt: skip
        await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 10)
        worker = start_worker("--csv", str(bars), "--speed", "100", "--start",
                              log_path=tmp_path / "worker.log",
                              SCALP_WEB_URL=f"http://127.0.0.1:{port_a}",
                              SCALP_REDIS_URL=redis_url)  # fmt: skip
        try:
            await asyncio.to_thread(
                wait_until,
                lambda: (s := engine_state()) and s.message.startswith("Feed finished"),
                timeout=60,
            )
            expected = await asyncio.to_thread(
                lambda: list(Signal.objects.order_by("id").values_list("id", flat=True))
            )
            for _ in range(100):
                if len(received["b"]) >= len(expected) <= len(received["a"]):
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            stop_worker(worker)
        return expected

    try:
        expected = asyncio.run(scenario())
    finally:
        for proc in daphnes:
            proc.terminate()
            proc.wait(timeout=10)
    assert len(expected) >= 3
    assert received["a"] == expected  # the bridge's own Daphne
    assert received["b"] == expected  # the other Daphne, through Redis


IDLE_SECONDS = 10  # twice redis-py 8's default 5 s socket timeout (channels_redis #422)


def test_sockets_on_redis_survive_idling_past_the_socket_timeout(tmp_path, redis_url):
    env = subprocess_env(SCALP_REDIS_URL=redis_url)
    port_a, port_b = free_port(), free_port()
    log_path = tmp_path / "daphne.log"
    log = log_path.open("w")
    daphnes = [start_daphne(port_a, env, log), start_daphne(port_b, env, log)]
    feed = {"Authorization": f"Bearer {settings_get().feed_token}"}
    bridge_auth = {"Authorization": f"Bearer {engine_token()}"}

    async def next_signal(ws) -> dict:
        while (event := json.loads(await asyncio.wait_for(ws.recv(), 30)))["event"] != "signal":
            pass
        return event

    async def scenario() -> tuple[dict, dict, int]:
        async with (
            websockets.connect(f"ws://127.0.0.1:{port_a}/ws/engine/",
                               additional_headers=bridge_auth) as bridge,
            websockets.connect(f"ws://127.0.0.1:{port_a}/ws/signals/",
                               additional_headers=feed) as client_a,
            websockets.connect(f"ws://127.0.0.1:{port_b}/ws/signals/",
                               additional_headers=feed) as client_b,
        ):  # fmt: skip
            await bridge.send(json.dumps({"event": "hello"}))
            await asyncio.sleep(IDLE_SECONDS)  # no traffic on any socket
            row = await asyncio.to_thread(
                signal_record, time=T0, symbol="AAPL", price=101.5, rule_id=1,
                rule_name="MA Momentum", bar_seconds=5, values={"PRICE": 101.5},
            )  # fmt: skip
            await bridge.send(json.dumps(row.to_event()))
            got_a, got_b = await next_signal(client_a), await next_signal(client_b)
            for ws in (bridge, client_a, client_b):
                assert ws.close_code is None, f"closed with {ws.close_code}"
            return got_a, got_b, row.id

    try:
        got_a, got_b, signal_id = asyncio.run(scenario())
    finally:
        for proc in daphnes:
            proc.terminate()
            proc.wait(timeout=10)
        log.close()
    assert got_a["id"] == got_b["id"] == signal_id
    assert "TimeoutError" not in log_path.read_text()
