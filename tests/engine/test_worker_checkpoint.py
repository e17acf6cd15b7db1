"""The worker's WAL checkpoints (``engine/worker/checkpoint.py``): off its bar commits,
done by a thread of their own. The real SQLite test file; on PostgreSQL both are no-ops."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection, connections
from django.db.backends.signals import connection_created

from bars.services import bars_store
from engine.core.bars import Bar
from engine.worker.checkpoint import Checkpointer, autocheckpoint_off

pytestmark = pytest.mark.django_db(transaction=True)

sqlite_only = pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite's write-ahead log")


@pytest.fixture
def worker_process():
    """Undo, after the test, what the worker does to its process's connections."""
    yield
    connection_created.disconnect(dispatch_uid="scalp-wal-autocheckpoint-off")
    if connection.vendor == "sqlite" and connection.connection is not None:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=1000")


def pragma(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def in_another_thread(fn):
    """``fn()`` in a new thread (so with a new Django connection), its result."""
    out = []

    def run():
        try:
            out.append(fn())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def write_pages(count: int) -> None:
    """Enough bars that their commits fill about ``count`` log pages."""
    bars = [
        Bar("CKPT", 1_700_000_000 + 5 * i, 5, 100.0, 101.0, 99.0, 100.5, 10.0)
        for i in range(count * 20)
    ]
    for start in range(0, len(bars), 500):
        bars_store(bars[start : start + 500])


@sqlite_only
def test_the_worker_connections_never_checkpoint_on_a_commit(worker_process):
    assert pragma("wal_autocheckpoint") == 1000  # SQLite's default: web processes keep it
    checkpointer = Checkpointer.for_this_process()
    assert checkpointer is not None
    assert pragma("wal_autocheckpoint") == 0
    # Django opens a connection per thread: the worker's sync thread gets the same setting.
    assert in_another_thread(lambda: pragma("wal_autocheckpoint")) == 0

    # Past 1,000 pages, the log still holds them all: no commit copied them back...
    write_pages(1500)
    busy, log, copied = checkpointer.once()
    assert log > 1000
    # ... the checkpointer does, all of them when no reader holds an old snapshot.
    assert (busy, copied) == (0, log)
    assert checkpointer.runs == 1


@sqlite_only
def test_a_checkpoint_does_not_wait_for_a_writer_and_the_thread_runs_until_stopped(
    worker_process,
):
    checkpointer = Checkpointer.for_this_process()
    checkpointer.seconds = 0.05
    write_pages(50)
    with connection.cursor() as cursor:
        cursor.execute("BEGIN IMMEDIATE")  # a bar's transaction, open (the write lock held)
        cursor.execute("INSERT INTO bars_storedbar (symbol, seconds, time, open, high, low, "
                       "close, volume) VALUES ('CKPT', 5, 1, 1, 1, 1, 1, 1)")  # fmt: skip
        done = checkpointer.once()  # would raise "database is locked" if it needed the lock
        cursor.execute("COMMIT")
    assert done is not None and done[0] == 0 and done[2] == done[1] > 0
    checkpointer.start()
    while checkpointer.runs < 4:
        checkpointer.stopping.wait(0.05)
    checkpointer.stop()
    assert not checkpointer.thread.is_alive()
    assert checkpointer.db is not None  # its own connection, closed with the thread
    with pytest.raises(Exception, match="closed"):
        checkpointer.db.execute("SELECT 1")


def test_a_checkpoint_that_fails_is_said_once_and_tried_again(tmp_path, caplog):
    checkpointer = Checkpointer(str(tmp_path))  # a directory: SQLite can't open it
    with caplog.at_level(logging.WARNING, logger="engine"):
        assert checkpointer.once() is None
        assert checkpointer.once() is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(
        "checkpointing the database's write-ahead log failed: "
    ), said
    assert checkpointer.runs == 0


def test_on_postgresql_nothing_changes(worker_process):
    if connection.vendor == "sqlite":
        pytest.skip("the PostgreSQL stage runs this")
    assert Checkpointer.for_this_process() is None
    assert autocheckpoint_off() is False
