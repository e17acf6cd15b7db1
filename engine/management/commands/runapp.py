"""`runapp`: Daphne (web + sockets) and the engine worker, supervised, stopped by Ctrl-C."""

import argparse
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from engine.core.inputs import InputError, parse_whole

MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long restarts with the shortest delay again
STOP_GRACE = 10.0


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    restarts: int = 0
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        # A new session: Ctrl-C reaches only the supervisor, which then stops children in order.
        # If the supervisor dies without doing so (kill -9), the kernel sends them SIGTERM.
        self.proc = subprocess.Popen(
            self.argv, env=self.env, start_new_session=True, preexec_fn=die_with_parent()
        )
        self.started = time.monotonic()
        self.restart_at = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent():
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies, however it
    dies (SIGKILL included); None where ``prctl`` is missing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


def port_holder(port: int) -> tuple[int, str] | None:
    """The pid and command line of a process listening on ``port``, if this user can see it."""
    inodes = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            if links & inodes:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                command = " ".join(a.decode(errors="replace") for a in argv if a)
                return int(entry.name), command
        except OSError:
            continue
    return None


def busy_port_message(host: str, port: int) -> str:
    holder = port_holder(port)
    if holder is None:
        who = ""
        stop = "Stop it"
    else:
        pid, command = holder
        if len(command) > 120:
            command = command[:117] + "..."
        who = f" by process {pid} ({command})"
        stop = f"Stop it (kill {pid})"
    return (
        f"{host}:{port} is already in use{who}: is ScalpSignal already running? "
        f"{stop}, or pick another port with --port."
    )


def port_arg(text: str) -> int:
    try:
        return parse_whole(text, name="--port", minimum=1, maximum=65535)
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class Command(BaseCommand):
    help = "Run the web app (Daphne) and the engine worker; restart the worker if it dies."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", type=port_arg, default=8000, help="port to bind (8000)")
        parser.add_argument("--no-engine", action="store_true", help="web only, no worker")

    def handle(self, *args, host: str, port: int, no_engine: bool, **options):
        self.stopping = False
        if not port_is_free(host, port):
            raise CommandError(busy_port_message(host, port), returncode=2)
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensureadmin", stdout=self.stdout)
        self.children = self.make_children(host, port, with_engine=not no_engine)
        # SIGHUP: the terminal closed. Stop the children as Ctrl-C does, not leave them running.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        for child in self.children:
            child.start()
        self.stdout.write(f"ScalpSignal is running at http://{host}:{port}/ (Ctrl-C stops it)")
        try:
            while not self.stopping:
                self.supervise_step(time.monotonic())
                time.sleep(0.2)
        finally:
            self.stop_children()

    def make_children(self, host: str, port: int, *, with_engine: bool) -> list[Child]:
        env = {**os.environ, "SCALP_WEB_URL": f"http://{host}:{port}"}
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        web = Child(
            "web",
            [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
             "--websocket_timeout", "-1", "scalpsite.asgi:application"],
            env,
        )  # fmt: skip
        children = [web]
        if with_engine:
            children.append(Child("engine", [sys.executable, manage, "runengine"], env))
        return children

    def on_signal(self, signum, frame) -> None:
        self.stopping = True

    def supervise_step(self, now: float) -> None:
        """Restart any child that exited, after a delay that doubles up to MAX_BACKOFF."""
        for child in self.children:
            if child.alive():
                continue
            if child.restart_at is None:
                code = child.proc.returncode if child.proc else None
                if now - child.started >= HEALTHY_AFTER:
                    child.backoff = 1.0
                child.restart_at = now + child.backoff
                self.stderr.write(
                    f"The {child.name} process exited (code {code}); "
                    f"restarting it in {child.backoff:.0f} s."
                )
                child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            elif now >= child.restart_at:
                child.restarts += 1
                child.start()

    def stop_children(self) -> None:
        # The engine first, so its last signals still reach the web side.
        for child in reversed(self.children):
            if child.proc is not None and child.alive():
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        self.stdout.write("ScalpSignal stopped.")
