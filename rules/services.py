"""Every change to rules goes through these functions (views, admin, CLI and engine alike)."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from engine.core.rules import RuleError, validate_definition
from engine.services import engine_assert_unlocked, settings_get, settings_set_active_rule
from rules.models import Rule, clean_rule_name

SYSTEM_READ_ONLY = "The system rule is read-only: clone it to make a version you can edit."


def rule_create(*, name: str, definition: object) -> Rule:
    rule = Rule(name=name, definition=definition, type=Rule.Type.CUSTOM)
    rule.full_clean()
    rule.save()
    return rule


def rule_check_editable(*, rule: Rule, action: str = "editing it") -> None:
    """Raise ValidationError when ``rule`` may not change: system rule or held by a run."""
    if rule.is_system:
        raise ValidationError(SYSTEM_READ_ONLY)
    engine_assert_unlocked(rule=rule, action=action)


def rule_update(*, rule: Rule, name: str | None = None, definition: object = None) -> Rule:
    rule_check_editable(rule=rule)
    if name is not None:
        rule.name = name
    if definition is not None:
        rule.definition = definition
    rule.full_clean()
    rule.save()
    return rule


def rule_delete(*, rule: Rule) -> None:
    """Delete a custom rule; if it was the active rule, the system rule becomes active."""
    if rule.is_system:
        raise ValidationError("The system rule can't be deleted.")
    engine_assert_unlocked(rule=rule, action="deleting it")
    with transaction.atomic():
        app_settings = settings_get()
        if app_settings.active_rule_id == rule.pk:
            app_settings.active_rule = Rule.objects.filter(is_system=True).order_by("pk").first()
            app_settings.save(update_fields=["active_rule", "updated_at"])
        rule.delete()


def _free_name(base: str) -> str:
    base = base[:72]
    name, n = base, 2
    while Rule.objects.filter(name=name).exists():
        name = f"{base} ({n})"
        n += 1
    return name


def rule_clone(*, rule: Rule, name: str | None = None) -> Rule:
    return rule_create(name=name or _free_name(f"{rule.name} copy"), definition=rule.definition)


def rule_activate(*, rule: Rule) -> None:
    settings_set_active_rule(rule=rule)


def _import_fields(data: object) -> tuple[str, dict]:
    if not isinstance(data, dict):
        raise ValidationError('A rule must be a JSON object like {"name": ..., "logic": ...}.')
    if data.get("name") in (None, ""):
        raise ValidationError({"name": 'The rule needs a non-empty "name".'})
    name = clean_rule_name(data["name"])
    definition = {k: v for k, v in data.items() if k not in {"id", "name", "type"}}
    return name, definition


def rule_import(*, data: object) -> Rule:
    """Create a custom rule from DESIGN §2 JSON, or update the custom rule of the same name."""
    name, definition = _import_fields(data)
    existing = Rule.objects.filter(name=name).first()
    if existing is not None:
        return rule_update(rule=existing, definition=definition)
    return rule_create(name=name, definition=definition)


def _one_line(err: ValidationError) -> str:
    """Every message of ``err`` on one line (each already names its field)."""
    text = " ".join(err.messages)
    return text if text.endswith((".", "!", "?")) else text + "."


def rule_import_many(*, items: Sequence[object]) -> list[Rule]:
    """Import a list of rules all or nothing.

    Every item is checked before anything is written, then all are written in one
    transaction; a problem raises ValidationError ``Rule N of M: ...`` and stores nothing.
    """
    total = len(items)
    if not total:
        raise ValidationError("The list holds no rules: nothing to import.")
    first_with: dict[str, int] = {}
    for index, item in enumerate(items, start=1):
        try:
            name, definition = _import_fields(item)
            validate_definition(definition)
        except RuleError as err:
            raise ValidationError(f"Rule {index} of {total}: {err}.") from None
        except ValidationError as err:
            raise ValidationError(f"Rule {index} of {total}: {_one_line(err)}") from None
        if name in first_with:
            raise ValidationError(
                f"Rule {index} of {total}: “{name}” is also the name of rule "
                f"{first_with[name]}; give each rule its own name."
            )
        first_with[name] = index
    rules = []
    with transaction.atomic():
        for index, item in enumerate(items, start=1):
            try:
                rules.append(rule_import(data=item))
            except ValidationError as err:
                raise ValidationError(f"Rule {index} of {total}: {_one_line(err)}") from None
    return rules
