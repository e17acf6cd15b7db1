"""Shared fixtures. Kept free of module-level Django imports: the IB feed tests also run in a
second virtualenv (ib_insync) without Django."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from importlib import import_module
from pathlib import Path

import pytest

from tests.faketws import FakeTWS

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 30.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def on_postgres() -> bool:
    """This run's database is PostgreSQL (``SCALP_DATABASE_URL``, e.g. under ``tests.pg``)."""
    return bool(os.environ.get("SCALP_DATABASE_URL"))


def test_database_url() -> str:
    """``postgres://…`` naming the TEST database pytest-django created (not the one in
    ``SCALP_DATABASE_URL``): Django renames ``settings.DATABASES`` when it creates it."""
    from urllib.parse import quote

    from django.conf import settings  # not at the top: this conftest also loads without Django

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError(f"this test run's database is not PostgreSQL ({db['ENGINE']})")
    auth = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must share this test run's database: the SQLite
    file, or on PostgreSQL the test database."""
    from django.conf import settings  # not at the top: this conftest also loads without Django

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scalpsite.settings", "PYTHONUNBUFFERED": "1"}
    if on_postgres():
        env["SCALP_DATABASE_URL"] = test_database_url()
    else:
        env["SCALP_DB_PATH"] = str(settings.DATABASES["default"]["NAME"])
    env.update(extra)
    return env


POSTGRES_ONLY = (
    "needs PostgreSQL: scripts/test runs it in its 'pytest on PostgreSQL' stage; by hand: "
    ".venv/bin/python -m tests.pg -- .venv/bin/python -m pytest <files>"
)


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: runs only when the database is PostgreSQL")


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.postgres`` tests say so explicitly when this run is on SQLite."""
    if on_postgres():
        return
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.skip(reason=POSTGRES_ONLY))


@pytest.fixture(scope="session", autouse=True)
def _postgres_sessions_end_before_teardown(request):
    """On PostgreSQL, end the sessions still on the test database when the run ends (threads'
    connections, a child process killed -9) so pytest-django can drop it."""
    if not on_postgres():
        yield
        return
    request.getfixturevalue("django_db_setup")
    blocker = request.getfixturevalue("django_db_blocker")
    yield
    from django.db import connection

    with blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def postgres_url(transactional_db) -> str:
    """The URL of this run's PostgreSQL test database, for child processes (Daphne, the
    worker) that must share it; the tables exist and are emptied after the test. Fails with
    the way to run it when the run is on SQLite (mark such tests ``postgres``)."""
    if not on_postgres():
        pytest.fail(POSTGRES_ONLY, pytrace=False)
    return test_database_url()


@pytest.fixture
def artifacts_dir(tmp_path_factory) -> Path:
    """Screenshots and logs worth looking at after a run (under pytest's temp dir)."""
    path = Path(os.environ.get("SCALP_ARTIFACTS_DIR") or tmp_path_factory.getbasetemp())
    path = path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def live_daphne(transactional_db, tmp_path):
    """A real Daphne on a random port serving this test run's database."""
    port = free_port()
    log = (tmp_path / "daphne.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "--websocket_timeout", "-1", "scalpsite.asgi:application"],
        cwd=ROOT, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def fake_tws():
    """The fake TWS on its own event loop in a thread, as a real TWS beside the web app
    (in-process views and a Daphne subprocess both reach it over TCP)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-tws", daemon=True)
    thread.start()
    gw = FakeTWS()
    asyncio.run_coroutine_threadsafe(gw.start(), loop).result(10)
    try:
        yield gw
    finally:
        asyncio.run_coroutine_threadsafe(gw.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def http_get(url: str, opener=None) -> tuple[int, str]:
    opener = opener or urllib.request.build_opener()
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def seed_defaults() -> None:
    """Re-create what the data migrations seed (a transactional test's flush removes it)."""
    from django.apps import apps  # not at the top: this conftest also loads without Django

    for module in ("rules.migrations.0002_seed_system_rule",
                   "watchlists.migrations.0002_seed_demo_watchlist"):  # fmt: skip
        import_module(module).seed(apps, None)


@pytest.fixture(autouse=True)
def _seeded_transactional_db(request):
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in request.fixturenames or (marker and marker.kwargs.get("transaction")):
        request.getfixturevalue("transactional_db")
        seed_defaults()


class Daphne:
    """A real Daphne on a fixed port that a test can stop and start again."""

    def __init__(self, port: int, log) -> None:
        self.port, self.log, self.proc = port, log, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "--websocket_timeout", "-1", "scalpsite.asgi:application"],
            cwd=ROOT, env=subprocess_env(), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        """SIGTERM; SIGKILL after 10 s (Daphne may wait on a browser's idle keep-alive
        connection; ``runapp`` stops it the same way)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
