"""SQLite's WAL checkpoints, off the bar path (the worker process only).

SQLite copies its write-ahead log back into the database file (a *checkpoint*) when a commit
leaves the log past 1,000 pages; that commit then waits for the copy and its fsync. On the
worker that commit is a bar's (bars, signals, outbox, outcomes): storing every bar made it
land there often enough to add about 12 ms to the bar → signal row path at p99.

So the worker turns that automatic step off on its own connections
(:func:`autocheckpoint_off`) and a :class:`Checkpointer` thread, with a connection of its
own, runs a PASSIVE checkpoint every :data:`CHECKPOINT_SECONDS`. A passive checkpoint takes
no write lock: a bar's commit never waits for it, and it never waits for one (what it can't
copy yet, it copies next time). The web processes keep SQLite's default. PostgreSQL: nothing
to do (both are no-ops there).
"""

import logging
import sqlite3
import threading

from django.db import connection
from django.db.backends.signals import connection_created

logger = logging.getLogger("engine")

CHECKPOINT_SECONDS = 2.0  # the log holds at most about this long a stretch of writes


def _off(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")


def autocheckpoint_off() -> bool:
    """No automatic checkpoint on this process's SQLite connections, open or opened later
    (Django opens one per thread). False (and nothing done) when the database isn't SQLite."""
    if connection.vendor != "sqlite":
        return False
    connection_created.connect(_off, dispatch_uid="scalp-wal-autocheckpoint-off")
    if connection.connection is not None:
        _off(None, connection)
    return True


class Checkpointer:
    """A daemon thread: ``PRAGMA wal_checkpoint(PASSIVE)`` every ``seconds`` on its own
    connection to the database file ``path``. :meth:`stop` ends it (and checkpoints once more)."""

    def __init__(self, path: str, seconds: float = CHECKPOINT_SECONDS):
        self.path = str(path)
        self.seconds = seconds
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="wal-checkpoint", daemon=True)
        self.db: sqlite3.Connection | None = None
        self.failed = False  # the last checkpoint failed (said once until one works again)
        self.runs = 0  # checkpoints done (for tests and the bench)

    @classmethod
    def for_this_process(cls) -> "Checkpointer | None":
        """Automatic checkpoints off for this process and a checkpointer for its database;
        None when it is not an SQLite file."""
        name = str(connection.settings_dict["NAME"])
        if connection.vendor != "sqlite" or name == ":memory:" or "mode=memory" in name:
            return None
        autocheckpoint_off()
        return cls(name)

    def start(self) -> "Checkpointer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def loop(self) -> None:
        try:
            while not self.stopping.wait(self.seconds):
                self.once()
            self.once()
        finally:
            if self.db is not None:
                self.db.close()

    def once(self) -> tuple[int, int, int] | None:
        """One passive checkpoint: (busy, pages in the log, pages copied), or None when the
        database could not be opened or read (said in the log, tried again next time)."""
        try:
            if self.db is None:
                self.db = sqlite3.connect(self.path, timeout=0, check_same_thread=False)
            busy, log, copied = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as err:
            if not self.failed:
                logger.warning("checkpointing the database's write-ahead log failed: %s", err)
            self.failed = True
            return None
        self.failed = False
        self.runs += 1
        return busy, log, copied
