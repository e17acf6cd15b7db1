"""Helpers to run the real worker process against this test run's SQLite file."""

from __future__ import annotations

import csv
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.db import close_old_connections

from engine.models import EngineState
from tests.conftest import ROOT, subprocess_env


def start_worker(*args: str, log_path: Path, **env: str) -> subprocess.Popen:
    """``manage.py runengine`` with this interpreter, or ``SCALP_WORKER_PYTHON``'s (another
    virtualenv's, e.g. one with ib_insync instead of ib_async)."""
    log = log_path.open("w")
    python = os.environ.get("SCALP_WORKER_PYTHON") or sys.executable
    return subprocess.Popen(
        [python, "manage.py", "runengine", *args],
        cwd=ROOT, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_until(predicate: Callable[[], object], *, timeout: float = 30.0, what: str = ""):
    """Poll ``predicate`` (which may query the database) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        close_old_connections()
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def engine_state():
    return EngineState.objects.filter(pk=1).first()


def stop_worker(proc: subprocess.Popen, *, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.terminate()
    return proc.wait(timeout=timeout)


def write_bars(path: Path, rows: list[tuple], *, with_symbol: bool = True) -> Path:
    """rows: (time, open, high, low, close, volume[, symbol])."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        header = ["time", "open", "high", "low", "close", "volume"]
        writer.writerow([*header, "symbol"] if with_symbol else header)
        writer.writerows(rows)
    return path


def zigzag_rows(symbol: str, base: float, n: int, *, start: int) -> list[tuple]:
    """5-second bars that rise for 12 bars and fall for 8: the default MA rule fires on each
    rise. Rows as :func:`write_bars` takes them."""
    rows, price = [], base
    for i in range(n):
        price = round(price + (0.04 if i % 20 < 12 else -0.06), 2)
        rows.append((start + 5 * i, price, price + 0.01, price - 0.01, price, 100, symbol))
    return rows


def trend_bars(symbol: str, start: int, closes: list[float], seconds: int = 5) -> list[tuple]:
    return [
        (start + i * seconds, c, c + 0.02, c - 0.02, c, 100 + i, symbol)
        for i, c in enumerate(closes)
    ]


class Gateway:
    """The fake TWS (``tests/faketws/``) as a separate process, driven over its control
    socket. ``start`` again after ``kill`` listens on the same port, as a restarted TWS does."""

    def __init__(self, script: dict, *, workdir: Path, port: int = 0) -> None:
        self.script = script
        self.workdir = workdir
        self.port = port
        self.control_port = 0
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._log = None

    def start(self, script: dict | None = None, *, timeout: float = 20.0) -> Gateway:
        if script is not None:
            self.script = script
        self.starts += 1
        path = self.workdir / f"gateway-{self.starts}.json"
        path.write_text(json.dumps(self.script))
        log = self._log = (self.workdir / f"gateway-{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faketws", "--port", str(self.port),
             "--control-port", "0", "--script", str(path)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.kill()
            raise RuntimeError(f"the fake TWS did not start; see {log.name}")
        ports = json.loads(line)
        self.port, self.control_port = ports["port"], ports["control_port"]
        return self

    def call(self, cmd: str, **args: object) -> dict:
        """One control command (see ``tests.faketws.run_command``); raises if it failed."""
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=30) as sock:
            stream = sock.makefile("rwb")
            stream.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            stream.flush()
            reply = json.loads(stream.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"fake TWS {cmd}: {reply.get('error')}")
        return reply

    def kill(self) -> None:
        """SIGKILL, as when TWS crashes or the machine's TWS restarts."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.call("shutdown")
                self.proc.wait(timeout=10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                pass
        self.kill()


def gateway_symbol(symbol: str, history: list[tuple], **details: object) -> dict:
    """A ``symbols`` item of a fake TWS script; ``history`` rows (time, o, h, l, c, v[, sym])
    become its 5-second history."""
    return {"symbol": symbol, **details, "history": {"5": [list(r[:6]) for r in history]}}


def sawtooth(n: int, base: float) -> list[float]:
    """Rises for 15 bars, falls for 10, repeated: the MA rule fires on each rise."""
    out, price = [], base
    for i in range(n):
        price += 0.05 if i % 25 < 15 else -0.07
        out.append(round(price, 2))
    return out


def sawtooth_bar_file(path: Path, n: int = 400, *, start: int = 1_765_895_400) -> Path:
    """AAPL and MSFT 5-second sawtooth bars, ``n`` each, interleaved in time order."""
    rows = trend_bars("AAPL", start, sawtooth(n, 190.0)) + trend_bars(
        "MSFT", start, sawtooth(n, 410.0)
    )
    rows.sort(key=lambda r: (r[0], r[6]))
    return write_bars(path, rows)


def replay_events(bars: Path, rule, tmp_path: Path) -> list[dict]:
    """The signal events ``manage.py replay`` computes for ``bars`` and ``rule`` (a Rule)."""
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(rule.to_json()))
    out = StringIO()
    call_command("replay", "--bars", str(bars), "--rule", str(rule_file), stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


# ---- the IB feed end to end (tests/engine/test_ib_faults.py and friends) ------------------


def live_series(
    symbol: str, base: float, live: int, history: int = 50
) -> tuple[list[tuple], list[tuple]]:
    """Sawtooth 5-second bars: ``history`` bars, then ``live`` bars starting 20 minutes ago
    (IB backfill reaches an hour back; bars in the future would count as still forming)."""
    start = int(time.time()) // 60 * 60 - 1200
    rows = trend_bars(symbol, start - history * 5, sawtooth(history + live, base))
    return rows[:history], rows[history:]


def interleave(*lists: list[tuple]) -> list[tuple]:
    """Rows of several symbols in time order (then by symbol), as IB would send them."""
    return sorted((row for rows in lists for row in rows), key=lambda r: (r[0], r[6]))


def push_rows(gw: Gateway, rows: list[tuple], *, delivered: int | None = 1) -> list[int]:
    """Push each row (time, o, h, l, c, v, symbol) through the gateway; with ``delivered``,
    each must reach exactly that many subscriptions. Returns how many each reached."""
    out = []
    for t, o, h, low, c, v, symbol in rows:
        reply = gw.call("push_bar", symbol=symbol, time=t, open=o, high=h, low=low, close=c,
                        volume=v)  # fmt: skip
        if delivered is not None:
            assert reply["delivered"] == delivered, (
                f"{symbol} {t} reached {reply['delivered']} subscriptions, not {delivered}"
            )
        out.append(reply["delivered"])
    return out


def wait_processed(rows: list[tuple], *, timeout: float = 20.0):
    """Until the worker's last processed bar is the last of ``rows`` (its close time)."""
    last = max(r[0] for r in rows) + 5
    return wait_until(
        lambda: (s := engine_state()) and s.last_bar_time and s.last_bar_time.timestamp() >= last,
        timeout=timeout, what=f"the worker to process the bar closing at {last}",
    )  # fmt: skip


def replay_split(tmp_path: Path, rule, history: list[tuple], live: list[tuple]):
    """``replay`` over history + live bars in one CSV: (its signals after the warm-up, its
    signals inside the warm-up, which the live engine must never emit), each a sorted list
    of (timestamp, symbol, price, rule id)."""
    bars = write_bars(tmp_path / "all-bars.csv", interleave(history, live))
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(rule.to_json()))
    out = StringIO()
    call_command("replay", "--bars", str(bars), "--rule", str(rule_file), "--bar-seconds", "5",
                 stdout=out)  # fmt: skip
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(r[0] for r in history) + 5))
    key = [(e["timestamp"], e["symbol"], e["price"], e["rule_id"]) for e in events]
    return sorted(k for k in key if k[0] > stamp), sorted(k for k in key if k[0] <= stamp)


def stored_signal_keys() -> list[tuple]:
    """The stored signals as :func:`replay_split` lists them."""
    from signals.models import Signal

    return sorted(
        (s.time.strftime("%Y-%m-%dT%H:%M:%SZ"), s.symbol, s.price, s.rule_id)
        for s in Signal.objects.all()
    )


STATE_LOG = "test_state_log"


def state_log_install() -> Callable[[], list[tuple[str, str]]]:
    """Record every write of the engine state (state + message), in order, with a trigger
    (SQLite's or PostgreSQL's): transient states and notices can't be missed by polling.
    Returns the reader; :func:`state_log_remove` drops it."""
    from django.db import connection

    table = EngineState._meta.db_table
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                f"CREATE TABLE {STATE_LOG} (id serial PRIMARY KEY, state text, message text)"
            )
            cur.execute(
                "CREATE FUNCTION test_state_log_row() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN INSERT INTO {STATE_LOG} (state, message) "
                "VALUES (NEW.state, NEW.message); RETURN NEW; END $$"
            )
            cur.execute(
                f"CREATE TRIGGER test_state_log_trigger AFTER UPDATE OF state ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION test_state_log_row()"
            )
        else:
            cur.execute(f"CREATE TABLE {STATE_LOG} (id INTEGER PRIMARY KEY, state, message)")
            cur.execute(
                f"CREATE TRIGGER test_state_log_trigger AFTER UPDATE OF state ON {table} "
                f"BEGIN INSERT INTO {STATE_LOG} (state, message) "
                "VALUES (NEW.state, NEW.message); END"
            )

    def read() -> list[tuple[str, str]]:
        close_old_connections()
        with connection.cursor() as cur:
            cur.execute(f"SELECT state, message FROM {STATE_LOG} ORDER BY id")
            return cur.fetchall()

    return read


def state_log_remove() -> None:
    from django.db import connection

    table = EngineState._meta.db_table
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(f"DROP TRIGGER IF EXISTS test_state_log_trigger ON {table}")
            cur.execute("DROP FUNCTION IF EXISTS test_state_log_row()")
        else:
            cur.execute("DROP TRIGGER IF EXISTS test_state_log_trigger")
        cur.execute(f"DROP TABLE IF EXISTS {STATE_LOG}")
