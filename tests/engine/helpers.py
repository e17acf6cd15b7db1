"""Helpers to run the real worker process against this test run's SQLite file."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT, subprocess_env


def start_worker(*args: str, log_path: Path, **env: str) -> subprocess.Popen:
    log = log_path.open("w")
    return subprocess.Popen(
        [sys.executable, "manage.py", "runengine", *args],
        cwd=ROOT, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_until(predicate: Callable[[], object], *, timeout: float = 30.0, what: str = ""):
    """Poll ``predicate`` (which may query the database) until it returns something truthy."""
    from django.db import close_old_connections

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        close_old_connections()
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def engine_state():
    from engine.models import EngineState

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


def trend_bars(symbol: str, start: int, closes: list[float], seconds: int = 5) -> list[tuple]:
    return [
        (start + i * seconds, c, c + 0.02, c - 0.02, c, 100 + i, symbol)
        for i, c in enumerate(closes)
    ]
