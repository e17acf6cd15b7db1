"""A throwaway PostgreSQL cluster for the tests: Debian's ``initdb``/``pg_ctl`` in a temp
dir, on a free port of 127.0.0.1, torn down afterwards (even on Ctrl-C or a failure).

As a module::

    with throwaway_cluster() as url:  # postgres://scalp@127.0.0.1:<port>/scalp
        ...

As a script, runs a command with ``SCALP_DATABASE_URL`` naming a fresh cluster and returns
its exit code::

    python -m tests.pg -- .venv/bin/python -m pytest tests/test_postgres.py

PostgreSQL refuses to run as root: as root the cluster belongs to the unprivileged
``postgres`` user (the Debian package creates it) and its commands run through ``runuser``.
No Django and no psycopg here: the fake-gateway tests' second virtualenv imports ``tests``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "scalp"
DATABASE = "scalp"
INSTALL_HINT = "install Debian's postgresql: apt-get install postgresql"


class PostgresMissing(RuntimeError):
    pass


def find_bin(name: str) -> str:
    """``name`` on PATH, else the newest ``/usr/lib/postgresql/<version>/bin/<name>``
    (Debian keeps the server binaries off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: _version_key(Path(p).parent.parent.name), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresMissing(
        f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
    )


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing(
            f"running as root, and there is no 'postgres' user to run the server as: {INSTALL_HINT}"
        ) from None


def _run(argv: list[str], owner: pwd.struct_passwd | None, cwd: Path) -> None:
    if owner is not None:
        argv = ["runuser", "-u", owner.pw_name, "--", *argv]
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}
    )
    if proc.returncode:
        raise RuntimeError(
            f"{' '.join(argv)} failed with exit code {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )


@contextlib.contextmanager
def throwaway_cluster(database: str = DATABASE) -> Iterator[str]:
    """Start a fresh cluster; yield ``postgres://scalp@127.0.0.1:<port>/<database>``.

    The user ``scalp`` is the cluster's superuser (trust auth on 127.0.0.1 only), so it may
    create databases: pytest-django makes ``test_<database>`` beside ``<database>``."""
    initdb, pg_ctl, createdb = find_bin("initdb"), find_bin("pg_ctl"), find_bin("createdb")
    owner = _server_user()
    root = Path(tempfile.mkdtemp(prefix="scalp-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    started = False
    try:
        sock.mkdir()
        if owner is not None:
            for path in (root, sock):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            root.chmod(0o755)
        _run(
            [initdb, "--auth=trust", "-U", USER, "-E", "UTF8", "--locale=C", "-D", str(data)],
            owner,
            root,
        )
        port = 0
        for attempt in range(3):  # the free port may be taken between choosing and binding
            port = _free_port()
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -k {sock} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
            )
            try:
                _run(
                    [
                        pg_ctl,
                        "start",
                        "-w",
                        "-t",
                        "60",
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-o",
                        options,
                    ],
                    owner,
                    root,
                )
                started = True
                break
            except RuntimeError as err:
                if attempt == 2:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RuntimeError(f"{err}\nserver log:\n{tail}") from None
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", USER, database], owner, root)
        yield f"postgres://{USER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with contextlib.suppress(RuntimeError):
                _run([pg_ctl, "stop", "-m", "immediate", "-w", "-D", str(data)], owner, root)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m tests.pg -- <command> [args...]", file=sys.stderr)
        return 2

    def _terminated(signum, frame):  # SIGTERM tears the cluster down as Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with throwaway_cluster() as url:
            print(f"tests.pg: PostgreSQL at {url}", file=sys.stderr, flush=True)
            proc = subprocess.Popen(argv, env={**os.environ, "SCALP_DATABASE_URL": url})
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The command got the same Ctrl-C (one process group); let it finish.
                proc.terminate()
                proc.wait()
                return 130
    except PostgresMissing as err:
        print(f"tests.pg: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
