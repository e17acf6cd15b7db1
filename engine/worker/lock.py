"""One engine worker per database: an advisory lock that the kernel releases when it dies."""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path


class WorkerLockHeld(Exception):
    """Another live worker holds the lock; ``str()`` is a sentence naming its pid."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "its pid is unknown"
        super().__init__(
            f"Another engine worker ({who}) is already running on this database "
            f"(lock file {path}); only one may run at a time. Stop that one first, "
            "or use it: Start and Stop on the dashboard reach it."
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
    by child processes). The holder's pid is written inside, for the refusal sentence."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

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

    def release(self) -> None:
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
