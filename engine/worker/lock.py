"""One engine worker per database: an advisory lock that is released when its holder dies.

On SQLite (one machine) a ``flock`` on a file beside the database, released by the kernel.
On PostgreSQL the workers may run on several machines, so the file lock (which still
answers at once on this machine) is joined by a session-level ``pg_try_advisory_lock`` on a
dedicated connection, released by the server when that connection ends (the worker exits
or dies, or its machine goes away: TCP keepalives end the session).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

# pg_try_advisory_lock's key: advisory locks are per database, so one constant suffices.
PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"scalpsignal engine worker").digest()[:8], "big",
                             signed=True)  # fmt: skip
PG_APP_NAME = "scalpsignal engine worker pid {pid} on {host}"
# Django's own keys in a PostgreSQL OPTIONS dict; the rest (sslmode, …) are libpq's.
DJANGO_ONLY_OPTIONS = {"pool", "server_side_binding", "isolation_level", "assume_role",
                       "cursor_factory"}  # fmt: skip
_PG_HOLDER = re.compile(r"^scalpsignal engine worker pid (\d+) on (.*)$")


class WorkerLockHeld(Exception):
    """Another live worker holds the lock; ``str()`` is a sentence naming its pid."""

    def __init__(
        self, path: Path, pid: int | None, *, host: str | None = None, where: str | None = None
    ) -> None:
        self.path = path
        self.pid = pid
        self.host = host
        who = f"pid {pid}" if pid is not None else "its pid is unknown"
        if host is not None:
            who += f" on {host}"
        super().__init__(
            f"Another engine worker ({who}) is already running on this database "
            f"({where or f'lock file {path}'}); only one may run at a time. Stop that one "
            "first, or use it: Start and Stop on the dashboard reach it."
        )


def lock_path(settings_dict: dict, var_dir: Path) -> Path:
    """``<db>.engine.lock`` beside a SQLite file; for another database, a file in the var
    directory named after it (one machine: enough for the local app)."""
    if "sqlite" in settings_dict.get("ENGINE", ""):
        return Path(f"{settings_dict['NAME']}.engine.lock")
    where = "|".join(
        str(settings_dict.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "NAME")
    )
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    return var_dir / f"engine-{digest}.lock"


class WorkerLock:
    """``flock`` on a file, held for the life of the process (the descriptor is not inherited
    by child processes). The holder's pid is written inside, for the refusal sentence.

    ``database``: a Django ``settings_dict``; None means Django's default database when
    Django is configured. When it is PostgreSQL, :meth:`acquire` also takes the database's
    advisory lock (see the module's docstring)."""

    def __init__(self, path: Path, database: dict | None = None) -> None:
        self.path = Path(path)
        self.database = database
        self.fd: int | None = None
        self.pg: Any = None  # the psycopg connection that holds the advisory lock

    def acquire(self) -> None:
        """Take the lock or raise :class:`WorkerLockHeld` at once (never waits)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = self._read_pid(fd)
            os.close(fd)
            raise WorkerLockHeld(self.path, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        database = self.database if self.database is not None else _django_default()
        if database and "postgresql" in database.get("ENGINE", ""):
            try:
                self.pg = pg_advisory_lock(database)
            except BaseException:
                self.release()
                raise

    def release(self) -> None:
        if self.pg is not None:
            self.pg.close()  # ending the session releases the advisory lock
            self.pg = None
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor releases the flock
            self.fd = None

    @staticmethod
    def _read_pid(fd: int) -> int | None:
        # The holder writes its pid right after locking: give it a moment if we raced it.
        for _ in range(20):
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.05)
        return None


def _django_default() -> dict | None:
    try:
        from django.conf import settings

        if not settings.configured:
            return None
        from django.db import connections

        return connections["default"].settings_dict
    except ImportError:
        return None


def pg_advisory_lock(database: dict) -> Any:
    """A new connection holding ``pg_try_advisory_lock(PG_LOCK_KEY)`` for its session, or
    :class:`WorkerLockHeld` naming the holder (its pid and machine, from the holder's
    ``application_name``)."""
    import psycopg

    host = socket.gethostname()
    params = {
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        "dbname": database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        **{k: v for k, v in database.get("OPTIONS", {}).items() if k not in DJANGO_ONLY_OPTIONS},
        "autocommit": True,
        "application_name": PG_APP_NAME.format(pid=os.getpid(), host=host)[:63],
        # A holder whose machine vanished loses the lock within about a minute.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "connect_timeout": 10,
    }
    conn = psycopg.connect(**{key: value for key, value in params.items() if value is not None})
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", [PG_LOCK_KEY]).fetchone()
        if row and row[0]:
            return conn
        holder = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 1",
            [(PG_LOCK_KEY >> 32) & 0xFFFFFFFF, PG_LOCK_KEY & 0xFFFFFFFF],
        ).fetchone()
    except BaseException:
        conn.close()
        raise
    conn.close()
    match = _PG_HOLDER.match(holder[0]) if holder else None
    where = f"PostgreSQL advisory lock on database {database['NAME']!r}"
    if match is None:
        raise WorkerLockHeld(Path(where), None, where=where)
    raise WorkerLockHeld(Path(where), int(match[1]), host=match[2], where=where)
