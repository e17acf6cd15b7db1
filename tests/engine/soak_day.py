"""The soak's trading day: the shared test clock, each symbol's bars, the seeded fault
schedule, and the threads that push bars, inject faults and sample the worker's RSS."""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
BAR = 5  # seconds


def market_epoch(day: str, hhmm: str) -> int:
    """``("2026-12-03", "09:30")`` → epoch seconds of that New York time."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    year, month, dom = (int(part) for part in day.split("-"))
    return int(datetime(year, month, dom, hour, minute, tzinfo=NEW_YORK).timestamp())


def ny_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, NEW_YORK).strftime("%H:%M:%S")


@dataclass(frozen=True)
class SessionClock:
    """``SCALP_TEST_CLOCK`` (engine/worker/clock.py): reads ``epoch`` at the real time
    ``t0`` and runs ``speed`` times faster. Give :attr:`value` to the worker and the fake."""

    t0: float
    epoch: float
    speed: float

    @property
    def value(self) -> str:
        return f"{self.t0:.6f},{self.epoch:.0f},{self.speed:g}"

    def now(self) -> float:
        return self.market(time.time())

    def market(self, wall: float) -> float:
        return self.epoch + (wall - self.t0) * self.speed

    def wall(self, market: float) -> float:
        return self.t0 + (market - self.epoch) / self.speed


# ---- bars ----------------------------------------------------------------------------------


def walk(rng: random.Random, n: int, base: float) -> list[float]:
    """``n`` closes: runs of 6-30 bars drifting up or down, with noise (the MA rule fires
    in each rise)."""
    out: list[float] = []
    price = base
    while len(out) < n:
        drift = rng.choice((0.03, 0.02, -0.02, -0.04))
        for _ in range(rng.randint(6, 30)):
            price = max(1.0, round(price + drift + rng.choice((-0.02, -0.01, 0, 0.01, 0.02)), 2))
            out.append(price)
    return out[:n]


def bars_of(symbol: str, start: int, closes: list[float], rng: random.Random) -> list[tuple]:
    """5-second bars (time, open, high, low, close, volume, symbol) with these closes."""
    rows, previous = [], closes[0]
    for i, close in enumerate(closes):
        high, low = round(max(previous, close) + 0.01, 2), round(min(previous, close) - 0.01, 2)
        rows.append((start + BAR * i, previous, high, low, close, rng.randint(100, 5000), symbol))
        previous = close
    return rows


def day_bars(
    symbols: dict[str, float], *, history_from: int, live_from: int, opens: int, closes: int,
    seed: int,
) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]]]:  # fmt: skip
    """Per symbol (name → base price): its history bars [history_from, live_from) and its live
    bars [live_from, closes). From 10 minutes before ``live_from`` to ``opens`` the price
    falls steadily: no rule on a rise fires there, so the worker's state at the open equals
    replay's whichever bar its warm-up ended on."""
    rng = random.Random(seed)
    history, live = {}, {}
    for symbol, base in symbols.items():
        n_hist = (live_from - history_from) // BAR
        n_fall = (opens - live_from + 600) // BAR
        n_day = (closes - opens) // BAR
        past = walk(rng, n_hist - 600 // BAR, base)
        fall = [round(past[-1] - 0.03 * (i + 1), 2) for i in range(n_fall)]
        day = walk(rng, n_day, fall[-1])
        rows = bars_of(symbol, history_from, past + fall + day, rng)
        history[symbol], live[symbol] = rows[:n_hist], rows[n_hist:]
    return history, live


# ---- the fake TWS's control socket ---------------------------------------------------------


class ControlLine:
    """One persistent connection to the fake TWS's control socket (one per thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._stream = None

    def call(self, cmd: str, **args: object) -> dict:
        if self._stream is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self._stream = self._sock.makefile("rwb")
        self._stream.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        self._stream.flush()
        reply = json.loads(self._stream.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"fake TWS {cmd}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = self._stream = None


def push_args(row: tuple) -> dict:
    t, o, h, low, c, v, symbol = row
    return {"symbol": symbol, "time": t, "open": o, "high": h, "low": low, "close": c,
            "volume": v}  # fmt: skip


# ---- faults --------------------------------------------------------------------------------


@dataclass
class Step:
    """One thing to do ``after`` real seconds from the fault's start: a control command
    (``cmd`` with ``args``) or, for ``cmd`` starting with ``worker_``, a worker action."""

    after: float
    cmd: str
    args: dict = field(default_factory=dict)


@dataclass
class Fault:
    kind: str
    at: int  # market epoch seconds it starts
    steps: list[Step]
    symbols: tuple[str, ...] = ()
    done_wall: list[float] = field(default_factory=list)  # wall time of each step, when done

    def describe(self) -> str:
        on = f" ({', '.join(self.symbols)})" if self.symbols else ""
        return f"{self.kind}{on}"


def fault_steps(kind: str, symbols: tuple[str, ...], client_id: int) -> list[Step]:
    """The control commands of one fault (real seconds apart: the worker's timers are real)."""
    if kind == "servers_lost_kept":  # 1100 → 1102
        return [Step(0, "connectivity_lost"), Step(3, "connectivity_restored", {"data_kept": True})]
    if kind == "servers_lost_data_lost":  # 1100 → 1101
        return [Step(0, "connectivity_lost"),
                Step(3, "connectivity_restored", {"data_kept": False})]  # fmt: skip
    if kind == "farm_blip":  # 2103 → 2104, one subscription silently dead afterwards
        return [Step(0, "farm_broken", {"farm": "usfarm"}),
                Step(1.5, "farm_ok", {"farm": "usfarm", "mute": list(symbols)})]  # fmt: skip
    if kind == "trade_bust":  # 10225
        return [Step(0, "trade_bust", {"symbol": symbols[0]})]
    if kind == "competing_session":  # 10197 … and its end
        return [Step(0, "competing_session", {"on": True}),
                Step(4, "competing_session", {"on": False})]  # fmt: skip
    if kind == "pacing":  # the connection drops; the reconnect's backfill gets 162 pacing
        return [Step(0, "refuse_history", {"count": 1}), Step(0, "drop")]
    if kind == "daily_restart":  # the gateway closes and refuses connections for a while
        return [Step(0, "daily_restart", {"seconds": 4})]
    if kind == "gateway_restart":  # TWS exits and comes back on the same port
        return [Step(0, "stop"), Step(3, "start")]
    if kind == "client_id_taken":  # another program takes our client id as we reconnect
        return [Step(0, "take_client_id", {"client_id": client_id}), Step(0, "drop"),
                Step(4, "release_client_id", {"client_id": client_id})]  # fmt: skip
    if kind == "bad_bars":  # the last bar again, the one before it, a day ahead, a day back
        return [Step(0, "bad_bars", {"symbol": symbols[0]})]
    if kind == "kill_worker":  # kill -9, started again 2 s later
        return [Step(0, "worker_kill"), Step(2, "worker_start")]
    raise ValueError(f"unknown fault {kind!r}")


# Once each, the farm blip twice; two kill -9s of the worker, about a third and two thirds
# into the day (each worker process runs long enough for its RSS to tell, and none has to
# spend more than about half of IB's 60 history requests per 10 minutes: the compressed day
# asks for them a hundred times faster than a real one).
FAULT_KINDS = (
    "servers_lost_kept", "servers_lost_data_lost", "farm_blip", "farm_blip", "trade_bust",
    "competing_session", "pacing", "daily_restart", "gateway_restart", "client_id_taken",
    "bad_bars",
)  # fmt: skip


def fault_schedule(
    symbols: list[str], *, first: int, last: int, seed: int, client_id: int
) -> list[Fault]:
    """The faults at seeded random times in [first, last): one per slot of equal length,
    starting in the slot's first quarter (each gets the rest of its slot to recover)."""
    rng = random.Random(seed)
    kinds = list(FAULT_KINDS)
    rng.shuffle(kinds)
    slots = len(kinds) + 2
    kinds.insert(rng.randrange(slots // 4, slots // 2), "kill_worker")
    kinds.insert(rng.randrange(slots // 2 + 1, 3 * slots // 4 + 1), "kill_worker")
    length = (last - first) // slots
    faults = []
    for index, kind in enumerate(kinds):
        at = first + (index * length + rng.randrange(0, length // 4)) // BAR * BAR
        chosen: tuple[str, ...] = ()
        if kind in ("farm_blip", "trade_bust", "bad_bars"):
            chosen = (rng.choice(symbols),)
        faults.append(Fault(kind, at, fault_steps(kind, chosen, client_id), chosen))
    return faults


# ---- the threads ---------------------------------------------------------------------------


class Day:
    """Runs the day on two threads: one pushes each bar when the clock passes its close,
    the other injects the faults (and kills and restarts the worker); a third samples the
    worker's VmRSS. ``errors`` collects what went wrong in them."""

    def __init__(
        self,
        clock: SessionClock,
        control_port: int,
        live: dict[str, list[tuple]],
        faults: list[Fault],
        *,
        worker_pid: Callable[[], int | None],
        kill_worker: Callable[[], None],
        start_worker: Callable[[], None],
    ) -> None:
        self.clock = clock
        self.control_port = control_port
        self.rows = sorted((r for rows in live.values() for r in rows), key=lambda r: (r[0], r[6]))
        self.last = {symbol: rows[0] for symbol, rows in live.items()}  # last pushed per symbol
        self.faults = faults
        self.worker_pid = worker_pid
        self.kill_worker = kill_worker
        self.start_worker = start_worker
        self.pushed: list[tuple] = []  # the day's real bars, as pushed
        self.bogus: list[tuple] = []  # bars pushed as faults (not part of the day)
        self.rss: list[tuple[float, int, int]] = []  # (wall, pid, kB)
        self.errors: list[str] = []
        self.max_lag = 0.0  # the most a push came after its bar's close (real seconds)
        self.history_per_worker: list[int] = []  # the gateway's history requests at each kill
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard(self._push), name="soak-bars", daemon=True),
            threading.Thread(target=self._guard(self._inject), name="soak-faults", daemon=True),
            threading.Thread(target=self._guard(self._sample), name="soak-rss", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads[:2]:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        self._threads[2].join(5)
        if any(t.is_alive() for t in self._threads[:2]):
            self.errors.append("the bar or fault thread did not finish in time")

    def stop(self) -> None:
        self._stop.set()

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # reported by the test
                self.errors.append(f"{threading.current_thread().name}: {exc!r}")
                self._stop.set()

        return run

    def _wait_market(self, market: float) -> bool:
        """Sleep until the clock reads ``market``; False if stopped first."""
        while not self._stop.is_set():
            left = self.clock.wall(market) - time.time()
            if left <= 0:
                return True
            self._stop.wait(min(left, 0.05))
        return False

    def _push(self) -> None:
        line = ControlLine(self.control_port)
        try:
            for row in self.rows:
                close = row[0] + BAR
                if not self._wait_market(close):
                    return
                with self._lock:
                    line.call("push_bar", **push_args(row))
                    self.last[row[6]] = row
                    self.pushed.append(row)
                self.max_lag = max(self.max_lag, time.time() - self.clock.wall(close))
        finally:
            line.close()

    def _inject(self) -> None:
        line = ControlLine(self.control_port)
        try:
            for fault in self.faults:
                if not self._wait_market(fault.at):
                    return
                began = time.time()
                for step in fault.steps:
                    pause = began + step.after - time.time()
                    if pause > 0 and self._stop.wait(pause):
                        return
                    self._do(line, step)
                    fault.done_wall.append(time.time())
        finally:
            line.close()

    def _do(self, line: ControlLine, step: Step) -> None:
        if step.cmd == "worker_kill":
            self.history_per_worker.append(line.call("state")["history_requests"])
            self.kill_worker()
        elif step.cmd == "worker_start":
            self.start_worker()
        elif step.cmd == "bad_bars":
            symbol = step.args["symbol"]
            with self._lock:
                last = self.last[symbol]
                older = next(r for r in reversed(self.pushed) if r[6] == symbol and r[0] < last[0])
                day = 86400
                future = (last[0] + day, *last[1:])
                past = (last[0] - day, *last[1:])
                for row in (last, older, future, past):  # the first two: exact copies
                    line.call("push_bar", **push_args(row))
                self.bogus += [future, past]
        else:
            line.call(step.cmd, **step.args)

    def _sample(self) -> None:
        while not self._stop.wait(2.0):
            pid = self.worker_pid()
            if pid is None:
                continue
            kb = vm_rss_kb(pid)
            if kb is not None:
                self.rss.append((time.time(), pid, kb))


def vm_rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def in_order(lines: list[str], expected: list[tuple[str, str]]) -> tuple[int, str] | None:
    """Find each (label, pattern) of ``expected`` in ``lines`` (a regular expression, case
    insensitive), each after the previous one's line. None if all are there; else (index in
    ``expected``, why)."""
    at = 0
    for index, (label, pattern) in enumerate(expected):
        found = re.compile(pattern, re.IGNORECASE)
        for position in range(at, len(lines)):
            if found.search(lines[position]):
                at = position + 1
                break
        else:
            before = lines[at - 1] if at else "(the start)"
            return index, f"{label}: no line matching “{pattern}” after “{before}”"
    return None


def by_bucket(keys: list[tuple], minutes: int = 15) -> dict[str, int]:
    """Signal keys (ISO UTC time first) counted per ``minutes`` of New York time."""
    out: dict[str, int] = {}
    for key in keys:
        epoch = datetime.fromisoformat(key[0].replace("Z", "+00:00")).timestamp()
        start = int(epoch) // (minutes * 60) * minutes * 60
        label = ny_time(start)[:5]
        out[label] = out.get(label, 0) + 1
    return out
