"""`runengine`: the worker process (feeds → signal core → SQLite → publisher)."""

import argparse
import asyncio
import logging
import math
import signal
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from engine.core.inputs import InputError, parse_whole
from engine.feeds import FEEDS
from engine.tokens import engine_token
from engine.worker.bridge import BridgePublisher
from engine.worker.checkpoint import Checkpointer
from engine.worker.config import Overrides
from engine.worker.engine import Engine
from engine.worker.lock import WorkerLock, WorkerLockHeld, lock_path
from rules.models import Rule
from rules.services import MAX_ACTIVE_RULES
from watchlists.models import Watchlist


def speed_arg(text: str) -> float:
    if text.lower() in {"max", "0"}:
        return 0.0
    if not text.isascii():  # float() reads Arabic-Indic and full-width digits
        raise ValueError(text)
    value = float(text)
    if not (math.isfinite(value) and value > 0):  # NaN compares false to everything
        raise ValueError(text)
    return value


def rule_ids_arg(text: str) -> tuple[int, ...]:
    """``--rule 3`` or ``--rule 3,7``: rule ids, in that order, each once."""
    try:
        ids = [
            parse_whole(part.strip(), name="--rule", minimum=1, maximum=2**63 - 1)
            for part in text.split(",")
        ]
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    unique = tuple(dict.fromkeys(ids))
    if len(unique) > MAX_ACTIVE_RULES:
        raise argparse.ArgumentTypeError(f"at most {MAX_ACTIVE_RULES} rules run at once")
    return unique


class Command(BaseCommand):
    help = "Run the engine worker. It follows Start/Stop from the UI; --start begins at once."

    def add_arguments(self, parser):
        parser.add_argument("--feed", choices=FEEDS, help="bar source (default: Settings page)")
        parser.add_argument("--csv", metavar="FILE", help="bar file for the csv feed")
        parser.add_argument(
            "--speed", type=speed_arg, metavar="X",
            help="replay speed for demo/csv: 1 = real time, 10 = ten times faster, max = no wait",
        )  # fmt: skip
        parser.add_argument(
            "--rule",
            type=rule_ids_arg,
            metavar="ID[,ID...]",
            help="rule ids (comma-separated) instead of the active rules",
        )
        parser.add_argument("--watchlist", metavar="NAME", help="watchlist instead of the active")
        parser.add_argument("--bar-seconds", type=int, choices=(5, 60), help="bar size")
        parser.add_argument("--start", action="store_true", help="start scanning right away")

    def handle(self, *args, **options):
        if options["csv"] and options["feed"] not in (None, "csv"):
            raise CommandError("--csv goes with --feed csv.", returncode=2)
        feed = options["feed"] or ("csv" if options["csv"] else None)
        overrides = Overrides(
            feed=feed,
            csv_path=options["csv"],
            speed=options["speed"],
            rule_ids=options["rule"],
            watchlist=options["watchlist"],
            bar_seconds=options["bar_seconds"],
        )
        self.check_overrides(overrides)
        lock = self.take_lock()
        logging.getLogger("engine").setLevel(logging.INFO)
        try:
            asyncio.run(self.serve(overrides, start=options["start"]))
        finally:
            lock.release()

    @staticmethod
    def take_lock() -> WorkerLock:
        """One worker per database: a second one would "recover" the live one's run."""
        from django.conf import settings
        from django.db import connection

        lock = WorkerLock(lock_path(connection.settings_dict, Path(settings.VAR_DIR)))
        try:
            lock.acquire()
        except WorkerLockHeld as err:
            raise CommandError(str(err), returncode=2) from None
        except OSError as err:
            raise CommandError(
                f"Can't create the worker lock file {lock.path}: {err.strerror or err}.",
                returncode=2,
            ) from None
        return lock

    def check_overrides(self, overrides: Overrides) -> None:
        """Refuse arguments that name things that don't exist before starting anything."""
        for rule_id in overrides.rule_ids or ():
            if not Rule.objects.filter(pk=rule_id).exists():
                raise CommandError(f"There is no rule with id {rule_id}.", returncode=2)
        if overrides.watchlist and not Watchlist.objects.filter(name=overrides.watchlist).exists():
            raise CommandError(
                f"There is no watchlist named {overrides.watchlist!r}.", returncode=2
            )
        if overrides.csv_path and not Path(overrides.csv_path).is_file():
            raise CommandError(f"{overrides.csv_path}: no such file.", returncode=2)

    async def serve(self, overrides: Overrides, *, start: bool) -> None:
        token = await sync_to_async(engine_token)()
        publisher = BridgePublisher(settings.SCALP_WEB_URL, token)
        engine = Engine(overrides=overrides, publisher=publisher, start=start)
        publisher.on_command = engine.on_command
        publisher.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, engine.request_shutdown)
        # SQLite: the write-ahead log is checkpointed beside the bar commits, not in them.
        checkpointer = await sync_to_async(Checkpointer.for_this_process)()
        if checkpointer is not None:
            checkpointer.start()
        try:
            await engine.main()
        finally:
            if checkpointer is not None:
                await asyncio.to_thread(checkpointer.stop)
