"""`destinations add|list|remove|enable|disable|test|log`: alert destinations from the
command line (DESIGN §7.4). Every change goes through ``alerts.services``, so a URL, a
template or a filter is refused here with the same sentence as on the Alerts page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from alerts import services
from alerts.models import Delivery, Destination
from alerts.sender import send_test
from engine.core.inputs import InputError, clip, parse_whole

MAX_ID = 2**63 - 1
MAX_LOG_LIMIT = 1000
# A template is at most MAX_TEMPLATE_CHARS characters: at most 4 bytes each in UTF-8.
MAX_TEMPLATE_BYTES = services.MAX_TEMPLATE_CHARS * 4

# What each services field is called on this command line.
FLAGS = {
    "kind": "kind",
    "url": "URL",
    "secret": "--secret",
    "template": "--template",
    "chat_id": "--chat-id",
    "rule_ids": "--rules",
    "symbols": "--symbols",
    "side": "--side",
    "name": "--name",
    "id": "N",
}


def _error_line(err: ValidationError, flags: dict[str, str]) -> str:
    if hasattr(err, "error_dict"):
        return "; ".join(
            f"{flags.get(field, field)}: {' '.join(msgs)}"
            for field, msgs in err.message_dict.items()
        )
    return " ".join(err.messages)


def _one_line_error(parser: CommandParser):
    """argparse's own errors (a missing argument, an unknown flag) as one line too, with
    exit code 2, instead of the usage block."""

    def error(message: str) -> NoReturn:
        if not parser.called_from_command_line:
            raise CommandError(f"Error: {message}", returncode=2)
        parser.exit(2, f"{parser.prog}: {message} (see --help)\n")

    return error


def read_template(file: str) -> str:
    """A template file's text, or CommandError naming the file with one line."""
    path = Path(file)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TEMPLATE_BYTES + 1)
    except FileNotFoundError:
        raise CommandError(f"--template {file}: no such file.", returncode=2) from None
    except IsADirectoryError:
        raise CommandError(
            f"--template {file}: is a directory, not a file.", returncode=2
        ) from None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise CommandError(f"--template {file}: can't read it ({reason}).", returncode=2) from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise CommandError(
            f"--template {file}: too big (a template is at most "
            f"{services.MAX_TEMPLATE_CHARS} characters).",
            returncode=2,
        )
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as err:
        raise CommandError(
            f"--template {file}: not UTF-8 text (byte {err.start + 1} can't be decoded).",
            returncode=2,
        ) from None


def target_text(destination: Destination) -> str:
    """Where it sends, with every secret masked (a Discord URL's token, a bot token, a
    webhook's HMAC secret)."""
    if destination.kind == Destination.Kind.TELEGRAM:
        return (
            f"chat {destination.chat_id} via {destination.url} "
            f"(token {services.secret_masked(destination.secret)})"
        )
    url = services.url_masked(destination)
    if destination.kind == Destination.Kind.WEBHOOK:
        signed = (
            f" (signed, secret {services.secret_masked(destination.secret)})"
            if destination.secret
            else ""
        )
        template = " (template)" if destination.template else ""
        return f"{url}{signed}{template}"
    return url


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the last one as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


class Command(BaseCommand):
    help = (
        "Alert destinations (webhook, Telegram, Discord): add, list, remove, enable, disable, "
        "send a test, and show the delivery log."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = _one_line_error(parser)  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def subparser(parent: Any, name: str, **kwargs: Any) -> CommandParser:
            child = parent.add_parser(name, **kwargs)
            child.error = _one_line_error(child)
            return child

        add = subparser(sub, "add", help="add a destination (prints: Added destination N)")
        kinds = add.add_subparsers(dest="kind", required=True, metavar="KIND")
        webhook = subparser(kinds, "webhook", help="POST each signal's JSON to URL")
        webhook.add_argument("url", metavar="URL")
        webhook.add_argument("--secret", metavar="S", help="HMAC secret: adds X-Scalp-Signature")
        webhook.add_argument(
            "--template", metavar="FILE", help="JSON body template with {{placeholders}}"
        )
        telegram = subparser(kinds, "telegram", help="a message to a Telegram chat via a bot")
        telegram.add_argument(
            "--token", metavar="T", required=True, help="the bot token from @BotFather"
        )
        telegram.add_argument(
            "--chat-id", metavar="C", required=True, help="a chat id (-100…) or @channelname"
        )
        telegram.add_argument(
            "--api-url", metavar="URL", help="the Bot API base URL (https://api.telegram.org)"
        )
        discord = subparser(kinds, "discord", help="a message to a Discord webhook URL")
        discord.add_argument("url", metavar="URL")
        for kind in (webhook, telegram, discord):
            kind.add_argument("--rules", metavar="ID,...", help="only these rules' signals")
            kind.add_argument("--symbols", metavar="A,B", help="only these symbols' signals")
            kind.add_argument("--side", metavar="buy|sell", help="only this side's signals")
            kind.add_argument("--name", metavar="N", help="a name (default: kind and host)")

        subparser(sub, "list", help="every destination, secrets masked")
        for action, text in (
            ("remove", "remove destination N with its log and undelivered alerts"),
            ("enable", "send to destination N again"),
            ("disable", "stop sending to destination N (its pending alerts wait)"),
            ("test", "send one sample signal to destination N now (exit 1 if it fails)"),
        ):
            subparser(sub, action, help=text).add_argument("id", metavar="N")
        log = subparser(sub, "log", help="the newest deliveries first")
        log.add_argument("id", metavar="N", nargs="?", help="only destination N's")
        log.add_argument("--limit", metavar="K", default="20", help="how many (default 20)")
        log.add_argument("--status", metavar="pending|delivered|failed", help="only these")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "add":
            self._add(options)
        elif action == "list":
            self._list()
        elif action == "log":
            self._log(options["id"], options["limit"], options["status"])
        else:
            destination = self._destination(options["id"], action)
            if action == "remove":
                services.destination_remove(destination.id)
                self.stdout.write(f"Removed destination {destination.id}")
            elif action in ("enable", "disable"):
                services.destination_set_enabled(destination, action == "enable")
                self.stdout.write(f"{action.capitalize()}d destination {destination.id}")
            else:
                self._test(destination)

    # --- actions ---------------------------------------------------------------------------

    def _add(self, options: dict[str, Any]) -> None:
        kind = options["kind"]
        data: dict[str, Any] = {
            "kind": kind,
            "rule_ids": options["rules"],
            "symbols": options["symbols"],
            "side": options["side"],
            "name": options["name"],
        }
        flags = dict(FLAGS)
        if kind == Destination.Kind.TELEGRAM:
            data.update(secret=options["token"], chat_id=options["chat_id"], url=options["api_url"])
            flags.update(secret="--token", url="--api-url")
        else:
            data["url"] = options["url"]
        if kind == Destination.Kind.WEBHOOK:
            data["secret"] = options["secret"]
            if options["template"] is not None:
                data["template"] = read_template(options["template"])
                flags["template"] = f"--template {options['template']}"
        try:
            destination = services.destination_create(**data)
        except ValidationError as err:
            raise CommandError(_error_line(err, flags), returncode=2) from None
        self.stdout.write(f"Added destination {destination.id}")

    def _list(self) -> None:
        destinations = services.destinations_list()
        if not destinations:
            self.stdout.write("No destinations (add one: destinations add webhook URL).")
            return
        rows = [("ID", "NAME", "KIND", "ENABLED", "HEALTH", "FILTERS", "SENDS TO")]
        rows += [
            (
                str(d.id),
                d.name,
                d.kind,
                "yes" if d.enabled else "no",
                d.health_text(),
                d.filters_text(),
                target_text(d),
            )
            for d in destinations
        ]
        for line in table(rows):
            self.stdout.write(line)

    def _test(self, destination: Destination) -> None:
        delivery = async_to_sync(send_test)(destination)
        what = f"Test to destination {destination.id} ({destination.name})"
        took = f"{delivery.latency_ms:g} ms" if delivery.latency_ms is not None else "-"
        if delivery.status == Delivery.Status.DELIVERED:
            self.stdout.write(f"{what}: delivered, HTTP {delivery.http_status} in {took}")
            return
        http = f"HTTP {delivery.http_status}, " if delivery.http_status else ""
        raise CommandError(f"{what} failed ({http}{took}): {delivery.error}", returncode=1)

    def _log(self, raw_id: str | None, raw_limit: str, status: str | None) -> None:
        ids = None if raw_id is None else [self._destination(raw_id, "log").id]
        try:
            limit = parse_whole(raw_limit, name="--limit", minimum=1, maximum=MAX_LOG_LIMIT)
        except InputError as err:
            raise CommandError(str(err), returncode=2) from None
        if status is not None and status not in Delivery.Status.values:
            raise CommandError(
                f"--status: “{clip(status)}” is not a status: use pending, delivered or failed.",
                returncode=2,
            )
        rows = services.deliveries_log(destination_ids=ids, status=status, limit=limit)
        if not rows:
            self.stdout.write("No deliveries yet.")
            return
        table_rows = [("ID", "CREATED (UTC)", "DESTINATION", "SIGNAL", "STATUS", "HTTP", "TRIES",
                       "MS", "ERROR")]  # fmt: skip
        for row in rows:
            table_rows.append(
                (
                    str(row.id),
                    row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    f"{row.destination_id} {row.destination.name}",
                    f"#{row.signal_id}" if row.signal_id is not None else "test",
                    row.status,
                    str(row.http_status or "-"),
                    str(row.tries),
                    f"{row.latency_ms:g}" if row.latency_ms is not None else "-",
                    row.error or "-",
                )
            )
        for line in table(table_rows):
            self.stdout.write(line)

    # --- helpers ---------------------------------------------------------------------------

    def _destination(self, raw_id: str, action: str) -> Destination:
        try:
            destination_id = parse_whole(raw_id, name="N", minimum=1, maximum=MAX_ID)
        except InputError as err:
            raise CommandError(f"destinations {action}: {err}", returncode=2) from None
        destination = Destination.objects.filter(id=destination_id).first()
        if destination is None:
            raise CommandError(f"There is no destination {destination_id}.", returncode=2)
        return destination
