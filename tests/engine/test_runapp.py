"""`runapp` end to end: a real Daphne on a free port, login over HTTP, clean Ctrl-C."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.conftest import ROOT, free_port, http_get, subprocess_env, wait_for_port
from tests.engine.helpers import engine_state, wait_until


def login(base: str, username: str, password: str):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, page = http_get(f"{base}/accounts/login/", opener)
    assert status == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(f"{base}/accounts/login/", data=body,
                                     headers={"Referer": f"{base}/accounts/login/"})  # fmt: skip
    with opener.open(request, timeout=10) as resp:
        return opener, resp.url, resp.read().decode()


@pytest.mark.django_db(transaction=True)
def test_runapp_serves_the_app_and_the_first_run_password_logs_in(tmp_path):
    port = free_port()
    env = subprocess_env(SCALP_VAR_DIR=str(tmp_path))
    env.pop("SCALP_ADMIN_PASSWORD", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runapp", "--no-engine", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        password = (tmp_path / "admin-password.txt").read_text().split("password: ")[1].strip()
        _, url, page = login(base, "admin", "wrong password")
        assert "didn't match" in page
        opener, url, page = login(base, "admin", password)
        assert url == f"{base}/" and "Dashboard" in page
        status, css = http_get(f"{base}/static/css/dist/styles.css", opener)
        assert status == 200 and "tailwindcss" in css
        status, _ = http_get(f"{base}/static/vendor/htmx/htmx-2.0.11.min.js", opener)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"First run: created user 'admin' with password {password}" in out
    assert "ScalpSignal stopped." in out


def test_runapp_refuses_a_busy_port_naming_the_process_holding_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "runapp", "--no-engine", "--port", str(port)],
            cwd=ROOT, env=subprocess_env(SCALP_VAR_DIR=str(tmp_path)), capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use by process {os.getpid()} (" in result.stderr
    assert f"kill {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_runapp_restarts_a_dead_worker_and_ctrl_c_stops_both(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runapp", "--port", str(port)],
        cwd=ROOT, env=subprocess_env(SCALP_VAR_DIR=str(tmp_path), SCALP_ADMIN_PASSWORD="pw-123456"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        first = wait_until(lambda: (s := engine_state()) and s.is_alive and s.pid, what="worker")
        os.kill(first, signal.SIGKILL)
        second = wait_until(
            lambda: (s := engine_state()) and s.is_alive and s.pid != first and s.pid,
            what="a restarted worker",
        )
        assert second != first
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "The engine process exited (code -9); restarting it in 1 s." in out
    assert engine_state().state == "idle"
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)
