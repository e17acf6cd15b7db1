"""Every change to rules goes through these functions (views, admin, CLI and engine alike)."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from engine.core.rules import RuleError, timeframe_problem, validate_definition
from engine.services import engine_assert_stopped, engine_assert_unlocked, settings_get
from rules.models import Rule, clean_rule_name

SYSTEM_READ_ONLY = "The system rule is read-only: clone it to make a version you can edit."
MAX_ACTIVE_RULES = 10  # DESIGN §7.2
ACTIVE_LOCK_ACTION = "changing the active rules"


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
    """Delete a custom rule (an active one leaves the active set with it)."""
    if rule.is_system:
        raise ValidationError("The system rule can't be deleted.")
    engine_assert_unlocked(rule=rule, action="deleting it")
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


# --- the active set (DESIGN §7.2) -----------------------------------------------------------


def rules_active() -> list[Rule]:
    """The active rules, by id: what the next engine run scans with."""
    settings_get()  # a fresh database starts with the system rule active
    return list(Rule.objects.filter(is_active=True).order_by("pk"))


def _assert_exist(ids: list[int]) -> None:
    found = set(Rule.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        listed = ", ".join(map(str, missing))
        raise ValidationError(
            f"There is no rule with id {listed}."
            if len(missing) == 1
            else f"There are no rules with ids {listed}."
        )


def _assert_fits(rule: Rule, bar_seconds: int) -> None:
    """Refuse a rule whose timeframes don't fit the Settings page's bar size."""
    problem = timeframe_problem(validate_definition(rule.definition), bar_seconds)
    if problem:
        raise ValidationError(
            f"The rule “{rule.name}” doesn't fit the bar size set on the Settings page: {problem}."
        )


def _too_many(count: int) -> ValidationError:
    return ValidationError(
        f"At most {MAX_ACTIVE_RULES} rules can be active at once; this would make {count}: "
        "deactivate one first."
    )


def rules_activate(*, ids: Sequence[int]) -> list[Rule]:
    """Add the rules ``ids`` to the active set, all or nothing; returns the active set."""
    engine_assert_stopped(action=ACTIVE_LOCK_ACTION)
    bar_seconds = settings_get().bar_seconds  # (and a fresh database's first state first)
    wanted = list(dict.fromkeys(int(pk) for pk in ids))
    if not wanted:
        raise ValidationError("Name at least one rule to activate.")
    with transaction.atomic():
        _assert_exist(wanted)
        for rule in Rule.objects.filter(pk__in=wanted, is_active=False).order_by("pk"):
            _assert_fits(rule, bar_seconds)
        count = Rule.objects.filter(Q(is_active=True) | Q(pk__in=wanted)).count()
        if count > MAX_ACTIVE_RULES:
            raise _too_many(count)
        Rule.objects.filter(pk__in=wanted).update(is_active=True)
    return rules_active()


def rules_deactivate(*, ids: Sequence[int] | None = None) -> list[Rule]:
    """Take the rules ``ids`` (None: every rule) out of the active set; returns the active
    set. Unknown ids are refused, all or nothing."""
    engine_assert_stopped(action=ACTIVE_LOCK_ACTION)
    settings_get()  # a fresh database's first state first, so this change is not undone
    with transaction.atomic():
        rows = Rule.objects.all()
        if ids is not None:
            wanted = list(dict.fromkeys(int(pk) for pk in ids))
            _assert_exist(wanted)
            rows = rows.filter(pk__in=wanted)
        rows.filter(is_active=True).update(is_active=False)
    return rules_active()


def rule_set_active(*, rule: Rule, active: bool) -> Rule:
    """Put ``rule`` into the active set or take it out (refused while the engine runs, or
    when it would make more than :data:`MAX_ACTIVE_RULES` active)."""
    if active:
        rules_activate(ids=[rule.pk])
    else:
        rules_deactivate(ids=[rule.pk])
    rule.refresh_from_db(fields=["is_active"])
    return rule


def rule_activate(*, rule: Rule) -> None:
    """Add ``rule`` to the active set (the seed's single-rule call; same as
    ``rule_set_active(rule=rule, active=True)``)."""
    rule_set_active(rule=rule, active=True)


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
