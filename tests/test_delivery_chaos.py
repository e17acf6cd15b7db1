"""Chaos: seeded random `kill -9` of Daphne, the worker and the clients while signals flow.

Clients are separate processes that resume with `?since=<last id they got>` (three programs,
one of them filtered to a symbol, and a dashboard socket resuming as dashboard.js does). At
the end every client must have received every stored signal it asked for exactly once, in id
order, whatever order the kills and restarts came in (docs/delivery.md, "Delivery by id").
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient

from engine.services import settings_get
from rules.services import rule_create
from signals.models import Signal
from tests.conftest import ROOT, Daphne, free_port
from tests.engine.helpers import start_worker, wait_until, write_bars

pytestmark = pytest.mark.django_db(transaction=True)

SEED = 16
KILLS = {"daphne": 4, "worker": 4, "client": 8}  # in an order and at times drawn from SEED
SPEED = "150"  # 30 bar times a second, two symbols: about 60 signals/s while the worker runs
SEGMENT_BARS = 4000  # per symbol: more than one worker lifetime, so it never runs dry
T0 = 1_765_895_400

EVERY_BAR = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": 0}],
    "cooldown_sec": 0,
    "trigger": "level",
}


class Client:
    """One `tests.delivery_client` process and the file of ids it received."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name, self.args, self.workdir = name, args, workdir
        self.out = workdir / f"{name}.ids"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"{self.name}-{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.delivery_client", "--out", str(self.out), *self.args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def ids(self) -> list[int]:
        return [int(line) for line in self.out.read_text().split()] if self.out.exists() else []


def segment(workdir: Path, k: int) -> Path:
    """Bars for the k-th worker start, later than every earlier segment: each start stores new
    signals at once instead of replaying bars whose signals are already stored."""
    start = T0 + k * SEGMENT_BARS * 5
    rows = []
    for i in range(SEGMENT_BARS):
        price = round(100 + (i % 40) / 100, 2)
        for symbol in ("AAPL", "MSFT"):
            rows.append((start + 5 * i, price, price, price, price, 100, symbol))
    return write_bars(workdir / f"bars-{k}.csv", rows)


def session_cookie() -> str:
    user = get_user_model().objects.create_user("chaos", password="chaos-pass-123")
    client = DjangoClient()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def delivery_problems(name: str, got: list[int], expected: list[int]) -> list[str]:
    if got == expected:
        return []
    seen, dups, out_of_order = set(), [], []
    for i, signal_id in enumerate(got):
        if signal_id in seen:
            dups.append(signal_id)
        elif i and signal_id < got[i - 1]:
            out_of_order.append(signal_id)
        seen.add(signal_id)
    missing = sorted(set(expected) - seen)
    extra = sorted(seen - set(expected))
    return [
        f"{name}: got {len(got)} ids for {len(expected)} stored; "
        f"missing {len(missing)} {missing[:20]}, duplicates {len(dups)} {dups[:20]}, "
        f"out of order {len(out_of_order)} {out_of_order[:20]}, not expected {extra[:20]}"
    ]


def test_every_client_gets_every_stored_signal_once_in_order_through_random_kills(tmp_path):
    rng = random.Random(SEED)
    schedule = ["daphne"] * KILLS["daphne"] + ["worker"] * KILLS["worker"]
    schedule += ["client"] * KILLS["client"]
    rng.shuffle(schedule)
    rule = rule_create(name="every bar", definition=EVERY_BAR)
    token = settings_get().feed_token
    port = free_port()
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    daphne = Daphne(port, (tmp_path / "daphne.log").open("w"))
    web = {"SCALP_WEB_URL": base}
    program = ["--url", f"{ws}/ws/signals/", "--token", token]
    clients = [
        Client("program-1", program, tmp_path),
        Client("program-2", program, tmp_path),
        Client("program-msft", [*program, "--symbols", "MSFT"], tmp_path),
        Client(
            "dashboard",
            ["--url", f"{ws}/ws/ui/", "--cookie", session_cookie(), "--origin", base],
            tmp_path,
        ),  # fmt: skip
    ]
    workers = 0

    def start_next_worker() -> subprocess.Popen:
        nonlocal workers
        bars = segment(tmp_path, workers)
        workers += 1
        args = ["--csv", str(bars), "--speed", SPEED, "--rule", str(rule.pk), "--start"]
        return start_worker(*args, log_path=tmp_path / f"worker-{workers}.log", **web)

    daphne.start()
    for client in clients:
        client.start()
    worker = start_next_worker()
    kills = dict.fromkeys(KILLS, 0)
    try:
        wait_until(lambda: Signal.objects.exists(), timeout=30, what="the first signal")
        for victim in schedule:
            time.sleep(rng.uniform(0.5, 2.5))
            kills[victim] += 1
            if victim == "daphne":
                daphne.proc.kill()
                daphne.proc.wait(timeout=10)
                time.sleep(rng.uniform(0.2, 2.5))
                daphne.start()
            elif victim == "worker":
                worker.kill()
                worker.wait(timeout=10)
                time.sleep(rng.uniform(0.2, 2.0))
                worker = start_next_worker()
            else:
                client = rng.choice(clients)
                client.kill()
                time.sleep(rng.uniform(0.0, 1.0))
                client.start()
        worker.kill()  # no more signals: what is stored now is what every client must get
        worker.wait(timeout=10)
        stored = list(Signal.objects.order_by("id").values_list("id", "symbol"))
        expected = {c.name: [i for i, s in stored if c.name != "program-msft" or s == "MSFT"]
                    for c in clients}  # fmt: skip
        with contextlib.suppress(AssertionError):  # the comparison below says what is wrong
            wait_until(lambda: all(c.ids() == expected[c.name] for c in clients), timeout=30)
    finally:
        for client in clients:
            if client.proc.poll() is None:
                client.kill()
        if worker.poll() is None:
            worker.kill()
        daphne.stop()
    assert len(stored) >= 500, f"too few signals to test anything: {len(stored)}"
    problems = [p for c in clients for p in delivery_problems(c.name, c.ids(), expected[c.name])]
    assert not problems, "\n".join(problems) + f"\nkills: {kills}, seed {SEED}"
