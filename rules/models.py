"""The Rule model: a named, validated rule definition (DESIGN §2)."""

from django.core.exceptions import ValidationError
from django.db import models

from engine.core.rules import RuleError, check_name, validate_definition
from engine.core.text import format_text


def clean_rule_name(value: object) -> str:
    """A rule's name, trimmed; ValidationError on ``name`` unless it is one line of text.

    Every way in (pages, admin, ``rules import``) names rules through this, so ``12345``,
    ``true`` or a list is never turned into a name and a NUL or line break never stored.
    """
    try:
        name = check_name(value)
    except RuleError as err:
        raise ValidationError({"name": f"The name {err.message}."}) from None
    if not name:
        raise ValidationError({"name": "The rule needs a name."})
    return name


class Rule(models.Model):
    class Type(models.TextChoices):
        SYSTEM = "system", "System"
        CUSTOM = "custom", "Custom"

    name = models.CharField(max_length=80, unique=True)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.CUSTOM)
    definition = models.JSONField(
        help_text='{"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}],'
        ' "cooldown_sec": 60, "trigger": "level"}'
    )
    is_system = models.BooleanField(default=False, editable=False)
    # One of the rules the engine scans with (DESIGN §7.2: up to MAX_ACTIVE_RULES at once).
    is_active = models.BooleanField("active", default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_system", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(is_system=False) | models.Q(type="system"),
                name="system_rule_has_system_type",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.name:  # an empty name already has Django's "cannot be blank"
            try:
                self.name = clean_rule_name(self.name)
            except ValidationError as err:
                errors.update(err.message_dict)
        try:
            self.definition = validate_definition(self.definition).to_json()
        except RuleError as err:
            errors["definition"] = [str(err)]
        if errors:
            raise ValidationError(errors)

    @property
    def text(self) -> str:
        """The rule's conditions in text form, e.g. ``PRICE > MA5 AND MA5 > MA10``."""
        try:
            return format_text(validate_definition(self.definition))
        except RuleError:
            return "(invalid definition)"

    @property
    def side(self) -> str | None:
        """``buy``, ``sell`` or None (the rule has no side)."""
        return self.definition.get("side")

    @property
    def cooldown_sec(self) -> int:
        return int(self.definition.get("cooldown_sec", 0))

    @property
    def trigger(self) -> str:
        return self.definition.get("trigger", "level")

    def to_json(self) -> dict:
        """The rule in the JSON shape of DESIGN §2 (what `rules export` prints)."""
        return {"id": self.pk, "name": self.name, "type": self.type, **self.definition}
