"""`rules import FILE.json` / `rules export [ID]`: rule definitions as DESIGN §2 JSON."""

import json
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from engine.core.inputs import InputError, load_json, parse_whole
from rules.models import Rule
from rules.services import rule_import, rule_import_many


def _error_line(err: ValidationError) -> str:
    if hasattr(err, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in err.message_dict.items())
    return " ".join(err.messages)


class Command(BaseCommand):
    help = "Import rules from a JSON file (one rule or a list) or export them as JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import", help="create or update custom rules from FILE.json")
        imp.add_argument("file")
        exp = sub.add_parser("export", help="print one rule (by id) or all rules as JSON")
        exp.add_argument("id", nargs="?")

    def handle(self, *args, action: str, **options):
        if action == "export":
            return self._export(options.get("id"))
        return self._import(options["file"])

    def _export(self, raw_id: str | None) -> None:
        try:
            rule_id = None if raw_id is None else parse_whole(raw_id, name="id", maximum=2**63 - 1)
        except InputError as err:
            raise CommandError(f"rules export {err}", returncode=2) from None
        data: list[dict] | dict
        if rule_id is None:
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
