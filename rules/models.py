"""The Rule model: a named, validated rule definition (DESIGN §2)."""

from django.core.exceptions import ValidationError
from django.db import models

from engine.core.rules import RuleError, validate_definition
from engine.core.text import format_text


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
        self.name = (self.name or "").strip()
        try:
            self.definition = validate_definition(self.definition).to_json()
        except RuleError as err:
            raise ValidationError({"definition": str(err)}) from err

    @property
    def text(self) -> str:
        """The rule's conditions in text form, e.g. ``PRICE > MA5 AND MA5 > MA10``."""
        try:
            return format_text(validate_definition(self.definition))
        except RuleError:
            return "(invalid definition)"

    @property
    def cooldown_sec(self) -> int:
        return int(self.definition.get("cooldown_sec", 0))

    @property
    def trigger(self) -> str:
        return self.definition.get("trigger", "level")

    def to_json(self) -> dict:
        """The rule in the JSON shape of DESIGN §2 (what `rules export` prints)."""
        return {"id": self.pk, "name": self.name, "type": self.type, **self.definition}
