"""`runapp`'s children die with it (SIGHUP, SIGKILL), and bad ports are one line."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, subprocess_env, wait_for_port
from tests.engine.helpers import wait_until


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan may wait to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start_runapp(tmp_path, port: int) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runapp", "--port", str(port)],
        cwd=ROOT, env=subprocess_env(SCALP_VAR_DIR=str(tmp_path), SCALP_ADMIN_PASSWORD="pw-1234"),
        stdout=(tmp_path / "runapp.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_port(port, proc=proc, timeout=60)
    wait_until(lambda: len(children_of(proc.pid)) == 2, timeout=60, what="daphne and the worker")
    return proc, children_of(proc.pid)


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if is_running(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL])
def test_children_die_with_runapp_and_the_port_is_freed(tmp_path, signum):
    port = free_port()
    proc, children = start_runapp(tmp_path, port)
    try:
        os.kill(proc.pid, signum)
        proc.wait(timeout=60)
        name = signal.Signals(signum).name
        wait_until(lambda: not any(is_running(pid) for pid in children), timeout=30,
                 what=f"daphne and the worker to end after {name}")  # fmt: skip
        wait_until(lambda: port_free(port), timeout=30, what="the port to be free")
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_leftovers(children)
    if signum == signal.SIGHUP:
        assert proc.returncode == 0
        assert "ScalpSignal stopped." in (tmp_path / "runapp.log").read_text()


@pytest.mark.parametrize("port", ["99999", "0", "80x"])
def test_a_port_out_of_range_is_one_line_exit_2(tmp_path, port):
    result = subprocess.run(
        [sys.executable, "manage.py", "runapp", "--no-engine", "--port", port],
        cwd=ROOT, env=subprocess_env(SCALP_VAR_DIR=str(tmp_path)), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--port" in result.stderr and "Traceback" not in result.stderr
