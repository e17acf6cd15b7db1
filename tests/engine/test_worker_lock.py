"""Exactly one engine worker per database: real worker processes against this run's SQLite."""

import os
import signal

import pytest

from tests.engine.helpers import engine_state, start_worker, stop_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_worker_exits_2_naming_the_first_and_steals_nothing(tmp_path):
    first = start_worker("--feed", "demo", "--start", log_path=tmp_path / "first.log")
    try:
        wait_until(lambda: (s := engine_state()) and s.state == "running" and s.pid == first.pid,
                   what="the first worker running")  # fmt: skip
        second = start_worker("--feed", "demo", log_path=tmp_path / "second.log")
        try:
            code = second.wait(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
        assert code == 2
        output = (tmp_path / "second.log").read_text()
        assert f"Another engine worker (pid {first.pid}) is already running" in output
        assert "Traceback" not in output
        state = engine_state()
        assert state.pid == first.pid and state.state == "running" and state.is_locked
        assert first.poll() is None
    finally:
        assert stop_worker(first) == 0, (tmp_path / "first.log").read_text()


def test_after_kill_9_the_next_worker_takes_over(tmp_path):
    first = start_worker("--feed", "demo", log_path=tmp_path / "first.log")
    wait_until(lambda: (s := engine_state()) and s.is_alive and s.pid == first.pid,
               what="the first worker")  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    second = start_worker("--feed", "demo", log_path=tmp_path / "second.log")
    try:
        wait_until(lambda: (s := engine_state()) and s.is_alive and s.pid == second.pid,
                   what="the second worker")  # fmt: skip
        assert second.poll() is None
    finally:
        assert stop_worker(second) == 0, (tmp_path / "second.log").read_text()
