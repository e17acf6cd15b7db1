"""`rules import FILE.json` / `rules export [ID]`: rule definitions as DESIGN §2 JSON;
`rules list`, `rules activate ID [ID...]`, `rules deactivate [ID...]`: the active set."""

import json
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from engine.core.inputs import InputError, load_json, parse_whole
from rules.models import Rule
from rules.services import (
    MAX_ACTIVE_RULES,
    rule_import,
    rule_import_many,
    rules_activate,
    rules_active,
    rules_deactivate,
)

MAX_ID = 2**63 - 1


def _error_line(err: ValidationError) -> str:
    if hasattr(err, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in err.message_dict.items())
    return " ".join(err.messages)


class Command(BaseCommand):
    help = (
        "Import rules from a JSON file (one rule or a list), export them as JSON, list them, "
        "and choose the active rules the engine scans with."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="create or update custom rules from FILE.json")
        imp.add_argument("file")
        exp = sub.add_parser("export", help="print one rule (by id) or all rules as JSON")
        exp.add_argument("id", nargs="?")
        exp.add_argument("--active", action="store_true", help="only the active rules")
        sub.add_parser("list", help="every rule: id, active or not, side, name, conditions")
        act = sub.add_parser(
            "activate", help=f"add rules to the active set (at most {MAX_ACTIVE_RULES})"
        )
        act.add_argument("ids", nargs="+", metavar="ID")
        deact = sub.add_parser(
            "deactivate", help="take rules out of the active set (every rule without ids)"
        )
        deact.add_argument("ids", nargs="*", metavar="ID")

    def handle(self, *args, action: str, **options):
        if action == "export":
            return self._export(options.get("id"), active=options["active"])
        if action == "list":
            return self._list()
        if action in ("activate", "deactivate"):
            return self._set_active(action, options["ids"])
        return self._import(options["file"])

    def _list(self) -> None:
        rules = list(Rule.objects.order_by("pk"))
        if not rules:
            self.stdout.write("No rules.")
            return
        rows = [("ID", "ACTIVE", "SIDE", "NAME", "CONDITIONS")]
        rows += [
            (str(r.pk), "yes" if r.is_active else "-", r.side or "-", r.name, r.text) for r in rules
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[4]]))

    def _set_active(self, action: str, raw_ids: list[str]) -> None:
        try:
            ids = [parse_whole(raw, name="id", minimum=1, maximum=MAX_ID) for raw in raw_ids]
        except InputError as err:
            raise CommandError(f"rules {action} {err}", returncode=2) from None
        try:
            if action == "activate":
                active = rules_activate(ids=ids)
            else:
                active = rules_deactivate(ids=ids or None)
        except ValidationError as err:
            raise CommandError(_error_line(err), returncode=2) from None
        self._print_active(active)

    def _print_active(self, active: list[Rule]) -> None:
        if not active:
            self.stdout.write(
                "No rule is active: the engine won't start until one is (rules activate ID)."
            )
            return
        self.stdout.write(f"Active rules ({len(active)} of at most {MAX_ACTIVE_RULES}):")
        for rule in active:
            side = f" [{rule.side}]" if rule.side else ""
            self.stdout.write(f"  {rule.pk}  {rule.name}{side}: {rule.text}")

    def _export(self, raw_id: str | None, *, active: bool = False) -> None:
        if active and raw_id is not None:
            raise CommandError("rules export takes an ID or --active, not both.", returncode=2)
        try:
            rule_id = None if raw_id is None else parse_whole(raw_id, name="id", maximum=MAX_ID)
        except InputError as err:
            raise CommandError(f"rules export {err}", returncode=2) from None
        data: list[dict] | dict
        if active:
            data = [rule.to_json() for rule in rules_active()]
        elif rule_id is None:
            data = [rule.to_json() for rule in Rule.objects.order_by("pk")]
        else:
            rule = Rule.objects.filter(pk=rule_id).first()
            if rule is None:
                raise CommandError(f"No rule with id {rule_id}.", returncode=2)
            data = rule.to_json()
        self.stdout.write(json.dumps(data, indent=2))

    def _import(self, file: str) -> None:
        path = Path(file)
        try:
            data = load_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file.", returncode=2) from None
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"{file}: can't read it ({err}).", returncode=2) from None
        except InputError as err:
            if err.syntax is not None:
                raise CommandError(
                    f"{file}: line {err.line}: not valid JSON ({err.syntax}).", returncode=2
                ) from None
            raise CommandError(f"{file}: {err}", returncode=2) from None
        try:
            rules = (
                rule_import_many(items=data) if isinstance(data, list) else [rule_import(data=data)]
            )
        except ValidationError as err:
            raise CommandError(f"{file}: {_error_line(err)}", returncode=2) from None
        for rule in rules:
            sys.stdout.write(f"Imported rule {rule.pk}: {rule.name} ({rule.text})\n")
