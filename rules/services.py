"""Every change to rules goes through these functions (views, admin, CLI and engine alike)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from engine.services import engine_assert_unlocked, settings_get, settings_set_active_rule
from rules.models import Rule

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


def rule_import(*, data: object) -> Rule:
    """Create a custom rule from DESIGN §2 JSON, or update the custom rule of the same name."""
    if not isinstance(data, dict):
        raise ValidationError('A rule must be a JSON object like {"name": ..., "logic": ...}.')
    definition = {k: v for k, v in data.items() if k not in {"id", "name", "type"}}
    name = str(data.get("name") or "").strip()
    if not name:
        raise ValidationError({"name": 'The rule needs a non-empty "name".'})
    existing = Rule.objects.filter(name=name).first()
    if existing is not None:
        return rule_update(rule=existing, definition=definition)
    return rule_create(name=name, definition=definition)
