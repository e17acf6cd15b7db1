"""Delivery benchmarks (realtime issue): latency, fan-out and resume, on real processes.

    .venv/bin/python bench/delivery_bench.py [latency|fanout|resume|scaleout|all]
        [--fanout-seconds 120 | --seconds 120] [--fanout-clients 1000]

Each scenario starts a real Daphne and the real engine worker code (``engine.worker.Engine``
with the real bridge publisher) fed by a scripted feed that stamps the moment each bar is
handed to the worker. Clients are real ``websockets`` connections in 4 separate processes; all
processes share this machine's wall clock, so "bar received by the worker → event received
by the client" is measured directly. Figures are printed; nothing is asserted.

- latency: 100 program clients + 5 browser sockets, 400 signals at 20/s.
- fanout: 1,000 program clients (--fanout-clients) on one Daphne, 1 signal/s for
  --fanout-seconds (120).
- resume: one client hangs up 50 times at random during 1,000 signals and resumes with since.
- scaleout: the fan-out twice in one run, for comparison: on one Daphne (the in-process layer),
  then on a real redis-server with 2 Daphnes (``SCALP_REDIS_URL``), the clients spread over
  both and the worker's bridge on the first. ``all`` runs it instead of ``fanout``.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets
from asgiref.sync import sync_to_async

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENT_PROCS = 4  # client processes per scenario

RULE_EVERY_BAR = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
    "cooldown_sec": 0,
    "trigger": "level",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def setup_django(var_dir: str) -> None:
    os.environ["SCALP_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scalpsite.settings")
    import django

    django.setup()


# --- the engine side ---------------------------------------------------------------------


async def run_engine(web_url: str, n_bars: int, interval: float, stamps_path: str) -> None:
    """The real Engine + BridgePublisher; bars come from a feed that stamps hand-over time."""
    # App modules are imported here, after main() has called setup_django() in this process.
    import engine.worker.engine as worker
    from engine.core.bars import Bar
    from engine.feeds.base import BarEvent, Feed, StatusEvent
    from engine.tokens import engine_token
    from engine.worker.bridge import BridgePublisher
    from engine.worker.config import Overrides
    from signals.models import Signal

    stamps: dict[int, int] = {}

    class ScriptedFeed(Feed):
        name = "bench"

        def __init__(self) -> None:
            self.closed = False

        async def events(self, symbols, *, bar_seconds, warmup_bars):
            yield StatusEvent("running", "bench feed")
            start = 1_765_895_400
            for i in range(n_bars):
                if self.closed:
                    return
                await asyncio.sleep(interval)
                bar_time = start + i * bar_seconds
                price = 100.0 + (i % 50) / 100
                stamps[bar_time + bar_seconds] = time.time_ns()  # handed to the worker now
                yield BarEvent(Bar("AAPL", bar_time, bar_seconds, price, price, price, price, 1))

        async def close(self) -> None:
            self.closed = True

    worker.make_feed = lambda config: ScriptedFeed()  # type: ignore[assignment]
    token = await sync_to_async(engine_token)()
    publisher = BridgePublisher(web_url, token)
    engine = worker.Engine(
        overrides=Overrides(feed="demo", rule_ids=(int(os.environ["BENCH_RULE_ID"]),)),
        publisher=publisher,
        start=True,
    )
    publisher.on_command = engine.on_command
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 10)
    main = asyncio.create_task(engine.main())
    while True:
        await asyncio.sleep(0.2)
        if engine.run is None and engine.state in ("idle", "error") and stamps:
            break
    engine.request_shutdown()
    await main
    Path(stamps_path).write_text(json.dumps(stamps))

    def stored_ms() -> list[float]:
        return [
            (int(row.recorded_at.timestamp() * 1e6) * 1000 - stamps[int(row.time.timestamp())])
            / 1e6
            for row in Signal.objects.all()
        ]

    stored = await sync_to_async(stored_ms)()
    print(f"  worker: bar handed over → row built for insert: p50 {percentile(stored, 50):.2f} ms "
          f"p99 {percentile(stored, 99):.2f} ms")  # fmt: skip


# --- the client side ---------------------------------------------------------------------


async def program_client(url, token, received, stop, ready, *, drop_plan=None):
    last_id, drops = 0, 0
    while not stop.is_set():
        try:
            async with websockets.connect(
                f"{url}?since={last_id}",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=30,
                max_queue=None,
            ) as ws:
                ready.set()
                async for frame in ws:  # cancelled at the end of the run
                    now = time.time_ns()
                    event = json.loads(frame)
                    if event.get("event") == "signal":
                        received.append((event["id"], event["timestamp"], now))
                        last_id = event["id"]
                        if drop_plan and drops < len(drop_plan) and last_id >= drop_plan[drops]:
                            drops += 1
                            break
        except (OSError, TimeoutError, Exception) as err:  # noqa: BLE001 - count and retry
            if stop.is_set():
                return
            print(f"client reconnecting after {type(err).__name__}", file=sys.stderr)
            # Jittered: a thousand clients retrying in step would keep a loaded Daphne busy
            # refusing them.
            await asyncio.sleep(random.uniform(0.1, 1.0))


async def ui_client(url, cookie, origin, received, stop, ready):
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie, "Origin": origin}, max_queue=None
    ) as ws:
        ready.set()
        async for _ in ws:  # cancelled at the end of the run
            received.append(time.time_ns())


async def run_clients(args) -> None:
    raise_fd_limit()
    stop, received = asyncio.Event(), [[] for _ in range(args.clients)]
    readies = [asyncio.Event() for _ in range(args.clients + args.ui)]
    tasks = []
    for i in range(args.clients):
        plan = None
        if args.drops:
            rng = random.Random(i)
            plan = sorted(rng.sample(range(1, args.expect), args.drops))
        tasks.append(asyncio.create_task(program_client(
            args.url, args.token, received[i], stop, readies[i], drop_plan=plan)))  # fmt: skip
        if i % 25 == 24:
            # Don't stampede the accept queue: each batch connects before the next one starts
            # (on a loaded machine, 1,000 handshakes at once outlast Daphne's 5 s handshake
            # timeout while they queue for the database thread, and the retries never end).
            await asyncio.wait_for(
                asyncio.gather(*(r.wait() for r in readies[i - 24 : i + 1])), 120
            )
    ui_received: list[list[int]] = [[] for _ in range(args.ui)]
    for j in range(args.ui):
        tasks.append(asyncio.create_task(ui_client(
            args.ui_url, args.cookie, args.origin, ui_received[j], stop,
            readies[args.clients + j])))  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    Path(args.ready_file).write_text("ready")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(len({r[0] for r in got}) >= args.expect for got in received):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    Path(args.out).write_text(json.dumps({"program": received, "ui": ui_received}))


# --- orchestration -----------------------------------------------------------------------


class Scenario:
    def __init__(self, name: str, *, daphnes: int = 1, redis_url: str = "") -> None:
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"scalp-bench-{name}-")
        self.env = {**os.environ, "SCALP_VAR_DIR": self.tmp, "PYTHONUNBUFFERED": "1"}
        if redis_url:
            self.env["SCALP_REDIS_URL"] = redis_url
        else:
            self.env.pop("SCALP_REDIS_URL", None)
        self.ports = [free_port() for _ in range(daphnes)]
        self.procs: list[subprocess.Popen] = []

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
            capture_output=True, text=True,
        ).stdout  # fmt: skip

    def prepare(self) -> dict:
        self.manage("migrate", "-v0")
        code = (
            "import json; from rules.services import rule_create; "
            "from engine.services import settings_get; "
            "from django.contrib.auth import get_user_model; from django.test import Client; "
            f"r = rule_create(name='every bar', definition={RULE_EVERY_BAR!r}); "
            "u = get_user_model().objects.create_user('bench', password='bench-pass-123'); "
            "c = Client(); c.force_login(u); "
            "print(json.dumps({'rule': r.pk, 'token': settings_get().feed_token, "
            "'session': c.cookies['sessionid'].value}))"
        )
        return json.loads(self.manage("shell", "-c", code).strip().splitlines()[-1])

    def start_daphnes(self) -> None:
        raise_fd_limit()
        log = open(Path(self.tmp) / "daphne.log", "w")  # noqa: SIM115 - lives with the process
        for port in self.ports:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                 "--websocket_timeout", "-1", "scalpsite.asgi:application"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        for port in self.ports:
            wait_for_port(port)

    def run(self, *, clients: int, ui: int, n_bars: int, interval: float, drops: int = 0,
            timeout: float = 60) -> dict:  # fmt: skip
        info = self.prepare()
        self.start_daphnes()
        # External programs are separate processes: spread the clients over a few of them so
        # one Python process reading every socket in turn doesn't add its own queueing. With
        # several Daphnes, client process k connects to Daphne k mod n.
        n_procs = max(1, min(CLIENT_PROCS, clients))
        client_procs = []
        for k in range(n_procs):
            base = f"127.0.0.1:{self.ports[k % len(self.ports)]}"
            share = clients // n_procs + (1 if k < clients % n_procs else 0)
            out, ready = Path(self.tmp) / f"clients-{k}.json", Path(self.tmp) / f"ready-{k}"
            proc = subprocess.Popen(
                [sys.executable, __file__, "_clients", "--url", f"ws://{base}/ws/signals/",
                 f"--token={info['token']}", "--clients", str(share),
                 "--ui", str(ui if k == 0 else 0),
                 "--ui-url", f"ws://{base}/ws/ui/", f"--cookie=sessionid={info['session']}",
                 "--origin", f"http://{base}", "--expect", str(n_bars), "--drops", str(drops),
                 "--timeout", str(timeout + n_bars * interval), "--out", str(out),
                 "--ready-file", str(ready)],
                cwd=ROOT, env=self.env,
            )  # fmt: skip
            self.procs.append(proc)
            client_procs.append((proc, out, ready, k % len(self.ports)))
        for proc, _, ready, _ in client_procs:
            while not ready.exists():
                if proc.poll() is not None:
                    raise RuntimeError("clients failed to connect")
                time.sleep(0.1)
        stamps = Path(self.tmp) / "stamps.json"
        subprocess.run(
            [sys.executable, __file__, "_engine", "--web-url", f"http://127.0.0.1:{self.ports[0]}",
             "--bars", str(n_bars), "--interval", str(interval), "--stamps", str(stamps)],
            cwd=ROOT, env={**self.env, "BENCH_RULE_ID": str(info["rule"])}, check=True,
        )  # fmt: skip
        merged: dict = {"program": [], "ui": [], "daphne": []}
        for proc, out, _, daphne in client_procs:
            proc.wait(timeout=timeout + n_bars * interval + 60)
            part = json.loads(out.read_text())
            merged["program"] += part["program"]
            merged["ui"] += part["ui"]
            merged["daphne"] += [daphne] * len(part["program"])
        return {"stamps": json.loads(stamps.read_text()), **merged}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


def epoch_of(timestamp: str) -> int:
    return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))


def latencies_ms(result: dict) -> tuple[list[float], int, int]:
    stamps = {int(k): v for k, v in result["stamps"].items()}
    values, lost, dup = [], 0, 0
    for got in result["program"]:
        ids = [r[0] for r in got]
        dup += len(ids) - len(set(ids))
        lost += len(stamps) - len(set(ids))
        for _, ts, recv in got:
            values.append((recv - stamps[epoch_of(ts)]) / 1e6)
    return values, lost, dup


def first_delivery_ms(result: dict) -> list[float]:
    """Per signal, the earliest client receipt: the pipeline without the fan-out spread."""
    stamps = {int(k): v for k, v in result["stamps"].items()}
    first: dict[int, int] = {}
    for got in result["program"]:
        for _, ts, recv in got:
            key = epoch_of(ts)
            first[key] = min(first.get(key, recv), recv)
    return [(recv - stamps[key]) / 1e6 for key, recv in first.items()]


def report(title: str, values: list[float], lost: int, dup: int, extra: str = "") -> None:
    print(f"\n{title}")
    if values:
        print(f"  deliveries {len(values):,}  p50 {percentile(values, 50):.2f} ms  "
              f"p99 {percentile(values, 99):.2f} ms  max {max(values):.2f} ms  "
              f"mean {statistics.fmean(values):.2f} ms")  # fmt: skip
    print(f"  lost {lost}  duplicates {dup}{extra}")


def scenario_latency() -> None:
    sc = Scenario("latency")
    try:
        result = sc.run(clients=100, ui=5, n_bars=400, interval=0.05)
    finally:
        sc.close()
    values, lost, dup = latencies_ms(result)
    ui_frames = sum(len(u) for u in result["ui"])
    report("latency: bar handed to the worker → signal received, 100 program clients + 5 "
           "browser sockets, 400 signals at 20/s", values, lost, dup,
           f"  (browser sockets got {ui_frames:,} frames)")  # fmt: skip
    first = first_delivery_ms(result)
    print(f"  first client per signal: p50 {percentile(first, 50):.2f} ms  "
          f"p99 {percentile(first, 99):.2f} ms")  # fmt: skip


def scenario_fanout(seconds: int, clients: int) -> None:
    sc = Scenario("fanout")
    try:
        result = sc.run(clients=clients, ui=0, n_bars=seconds, interval=1.0, timeout=120)
    finally:
        sc.close()
    values, lost, dup = latencies_ms(result)
    report(f"fan-out: {clients:,} program clients, 1 signal/s for {seconds} s", values, lost, dup)


def redis_server() -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the scaleout stage needs redis-server: apt-get install redis-server")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="scalp-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def scenario_scaleout(seconds: int, clients: int) -> None:
    """The same fan-out on one Daphne and on Redis + 2 Daphnes, reported side by side."""
    results = {}
    sc = Scenario("fanout")
    try:
        results["one Daphne, in-process layer"] = sc.run(
            clients=clients, ui=0, n_bars=seconds, interval=1.0, timeout=120
        )
    finally:
        sc.close()
    redis, url = redis_server()
    sc = Scenario("scaleout", daphnes=2, redis_url=url)
    try:
        results["Redis + 2 Daphnes"] = sc.run(
            clients=clients, ui=0, n_bars=seconds, interval=1.0, timeout=120
        )
    finally:
        sc.close()
        redis.terminate()
        redis.wait(timeout=10)
    print(f"\nscale-out: {clients:,} program clients, 1 signal/s for {seconds} s, "
          "bar handed to the worker → signal received")  # fmt: skip
    for name, result in results.items():
        values, lost, dup = latencies_ms(result)
        print(f"  {name:<30} p50 {percentile(values, 50):7.2f} ms  "
              f"p99 {percentile(values, 99):7.2f} ms  max {max(values):7.2f} ms  "
              f"deliveries {len(values):,}  lost {lost}  duplicates {dup}")  # fmt: skip
    result = results["Redis + 2 Daphnes"]
    for daphne, label in ((0, "the bridge's Daphne"), (1, "the other Daphne")):
        pairs = zip(result["program"], result["daphne"], strict=True)
        part = {**result, "program": [got for got, d in pairs if d == daphne]}
        values, lost, _ = latencies_ms(part)
        print(f"    clients on {label:<20} p50 {percentile(values, 50):7.2f} ms  "
              f"p99 {percentile(values, 99):7.2f} ms  ({len(part['program'])} clients, "
              f"lost {lost})")  # fmt: skip


def scenario_resume() -> None:
    sc = Scenario("resume")
    try:
        result = sc.run(clients=1, ui=0, n_bars=1000, interval=0.01, drops=50)
    finally:
        sc.close()
    got = [r[0] for r in result["program"][0]]
    stamps = result["stamps"]
    print("\nresume: one client hangs up 50 times at random during 1,000 signals, since=last id")
    print(
        f"  signals stored {len(stamps)}  received {len(got)}  distinct {len(set(got))}  "
        f"in order {got == sorted(got)}  exactly once {len(got) == len(set(got)) == len(stamps)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="ScalpSignal delivery benchmarks")
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "latency", "fanout", "resume", "scaleout", "_clients", "_engine"],
    )
    parser.add_argument("--fanout-seconds", "--seconds", type=int, default=120)
    parser.add_argument("--fanout-clients", type=int, default=1000)
    for name in (
        "url",
        "token",
        "ui-url",
        "cookie",
        "origin",
        "out",
        "ready-file",
        "web-url",
        "stamps",
    ):
        parser.add_argument(f"--{name}")
    for name in ("clients", "ui", "expect", "drops", "bars"):
        parser.add_argument(f"--{name}", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()  # fmt: skip
    if args.what == "_clients":
        asyncio.run(run_clients(args))
    elif args.what == "_engine":
        setup_django(os.environ["SCALP_VAR_DIR"])
        asyncio.run(run_engine(args.web_url, args.bars, args.interval, args.stamps))
    else:
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        if args.what in ("all", "latency"):
            scenario_latency()
        if args.what in ("all", "resume"):
            scenario_resume()
        if args.what == "fanout":
            scenario_fanout(args.fanout_seconds, args.fanout_clients)
        if args.what in ("all", "scaleout"):
            scenario_scaleout(args.fanout_seconds, args.fanout_clients)


if __name__ == "__main__":
    main()
