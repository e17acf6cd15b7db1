"""The rule builder form: a rule's fields plus its condition rows, validated by the core."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from engine.core.instruments import Instrument
from engine.core.rules import (
    DEFAULT_RULE_DEFINITION,
    MAX_CONDITIONS,
    OPERATOR_HELP,
    OPERATORS,
    TIMEFRAMES,
    RuleDef,
    RuleError,
    canonical_operand,
    parse_number,
    split_timeframe,
    timeframe_problem,
    validate_definition,
)
from engine.core.text import format_number, format_text, parse_text
from rules.forms.common import sentence
from rules.models import Rule
from scalpsite.ui import INPUT

OPERAND_SUGGESTIONS = (
    "PRICE", "MA5", "MA10", "MA20", "EMA9", "EMA20", "RSI14", "VWAP",
    "BBUPPER20", "BBLOWER20", "VOLUME", "OPEN", "HIGH", "LOW",
)  # fmt: skip
OPERATOR_LABELS = {
    ">": ">",
    "<": "<",
    ">=": "≥",
    "<=": "≤",
    "crosses_above": "crosses above",
    "crosses_below": "crosses below",
}
SIDE_LABELS = {"": "none", "buy": "BUY ▲", "sell": "SELL ▼"}
# The timeframe picker beside each operand: "" is the run's own bar.
TIMEFRAME_CHOICES = (("", "— current bar"), *((name, name) for name in TIMEFRAMES))
# Rows beyond this are dropped before validation: the core refuses more than 10 anyway, and
# a crafted request must not make the page render thousands of rows.
MAX_ROWS_ACCEPTED = 2 * MAX_CONDITIONS
_ROW_KEY = re.compile(r"^[a-z0-9]{1,16}$")


# Operands that need a traded volume: undefined (their conditions false) on an instrument
# with none, an FX pair's quotes or an index's values (DESIGN §7.1).
VOLUME_OPERANDS = ("VOLUME", "VWAP")


def volume_operands(rule_def: RuleDef) -> list[str]:
    """The volume operands ``rule_def`` reads, on any timeframe (``VWAP@1m`` is VWAP)."""
    bases = {split_timeframe(name)[0] for name in rule_def.operands()}
    return [name for name in VOLUME_OPERANDS if name in bases]


def reads_volume(operands: Iterable[str]) -> bool:
    """Whether any of ``operands`` (as typed or canonical, any timeframe) is a volume one."""
    for token in operands:
        name = canonical_operand(token) if isinstance(token, str) else None
        if name is not None and split_timeframe(name)[0] in VOLUME_OPERANDS:
            return True
    return False


def no_volume_sentence(instruments: Iterable[Instrument]) -> str:
    """Which of ``instruments`` have no volume, and what that does to a rule; "" if none."""
    items = [instrument.text for instrument in instruments if not instrument.has_volume]
    if not items:
        return ""
    names = items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
    return (
        f"{names} {'has' if len(items) == 1 else 'have'} no volume: VOLUME and VWAP are "
        "undefined there, so conditions on them are false."
    )


def no_volume_warning(rule_def: RuleDef | None, instruments: Iterable[Instrument]) -> str:
    """The builder's warning when ``rule_def`` reads VOLUME or VWAP and some of
    ``instruments`` (the active watchlist's) have no volume; "" otherwise. Not an error: the
    rule still saves and runs, its volume conditions are false on those items."""
    if rule_def is None or not volume_operands(rule_def):
        return ""
    return no_volume_sentence(instruments)


def new_row_key() -> str:
    return secrets.token_hex(4)


@dataclass
class ConditionRow:
    """One condition row of the builder, as typed; ``key`` names its error slots.

    ``left_tf`` / ``right_tf`` are the timeframe pickers beside the operands ("" = the run's
    own bar); :meth:`to_json` joins them to the operand (``MA20`` and ``1m`` → ``MA20@1m``).
    An operand typed with its own suffix (``MA20@1m``) is taken as typed when the picker is
    left on the current bar or says the same.
    """

    key: str
    left: str = "PRICE"
    op: str = ">"
    right: str = ""
    left_tf: str = ""
    right_tf: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def operand(self, part: str) -> str:
        """The operand of ``part`` ("left" / "right") with its timeframe, as the core reads it."""
        value, tf = getattr(self, part), getattr(self, f"{part}_tf")
        if not tf or not value or "@" in value or parse_number(value) is not None:
            return value
        return f"{value}@{tf}"

    def to_json(self) -> dict[str, Any]:
        return {"left": self.operand("left"), "op": self.op, "right": self.operand("right")}


def _split_operand(text: str) -> tuple[str, str]:
    """``MA20@1m`` → (``MA20``, ``1m``) when the suffix is a known timeframe; else (text, "")."""
    base, at, tf = text.partition("@")
    if at and tf.strip().lower() in TIMEFRAMES:
        return base.strip(), tf.strip().lower()
    return text, ""


def rows_from_definition(definition: dict[str, Any]) -> list[ConditionRow]:
    rows = []
    for i, cond in enumerate(definition.get("conditions") or []):
        right = cond.get("right", "")
        if not isinstance(right, str):
            right = format_number(right)
        left, left_tf = _split_operand(str(cond.get("left", "")))
        right, right_tf = _split_operand(right)
        rows.append(ConditionRow(str(i), left, str(cond.get("op", "")), right, left_tf, right_tf))
    return rows


_COLUMNS = ("row", "left", "op", "right", "left_tf", "right_tf")


def rows_from_data(data) -> list[ConditionRow]:
    """The condition rows of a POST: parallel ``row``/``left``/``op``/``right`` lists, and
    ``left_tf``/``right_tf`` (the timeframe pickers; missing means the current bar)."""
    columns = [data.getlist(name) for name in _COLUMNS]
    count = min(max(len(column) for column in columns[:4]), MAX_ROWS_ACCEPTED)
    rows, seen = [], set()
    for i in range(count):
        key, left, op, right, left_tf, right_tf = (
            column[i][:200] if i < len(column) else "" for column in columns
        )
        if not _ROW_KEY.match(key) or key in seen:
            key = new_row_key()
        seen.add(key)
        row = ConditionRow(key, left.strip(), op.strip(), right.strip())
        row.left_tf, row.right_tf = left_tf.strip(), right_tf.strip()
        # A suffix typed in the operand box that the picker agrees with (or leaves to the
        # box) moves to the picker, so the row shows one way of saying it.
        for part in ("left", "right"):
            base, typed_tf = _split_operand(getattr(row, part))
            picked = getattr(row, f"{part}_tf")
            if typed_tf and picked in ("", typed_tf):
                setattr(row, part, base)
                setattr(row, f"{part}_tf", typed_tf)
        rows.append(row)
    return rows


def _row_problem(row: ConditionRow, part: str) -> str | None:
    """Why one side of a row is invalid (a sentence), checked through the core validator."""
    value = getattr(row, part)
    if part in ("left", "right"):
        tf = getattr(row, f"{part}_tf")
        if tf and tf not in TIMEFRAMES:
            return "Choose the timeframe from the list: " + ", ".join(TIMEFRAMES) + "."
        if tf and parse_number(value) is not None:
            return "A number has no timeframe: set the timeframe to — current bar."
        typed_tf = _split_operand(value)[1]
        if tf and typed_tf and typed_tf != tf:
            return (
                f"{value} says @{typed_tf} but the timeframe picker says {tf}: say it in one place."
            )
        value = row.operand(part)
    if part == "op":
        if value not in OPERATORS:
            return sentence(f"choose an operator: {OPERATOR_HELP.removeprefix('use ')}")
        return None
    if not value:
        if part == "left":
            return "Pick the left operand, e.g. PRICE or MA5."
        return "Pick the right operand or type a number."
    if part == "left" and parse_number(value) is not None:
        return (
            "The left side must be an indicator or price, not a number; "
            "put the number on the right (e.g. RSI14 < 30)."
        )
    probe = {"left": "PRICE", "op": ">", "right": "PRICE", part: value}
    try:
        validate_definition({"logic": "AND", "conditions": [probe], "cooldown_sec": 0})
    except RuleError as err:
        return sentence(err.message)
    return None


class RuleBuilderForm(forms.Form):
    """A rule's name, logic, cooldown and trigger, plus its condition rows (``self.rows``).

    Validation goes through the core validator; ``self.definition`` is the canonical
    definition once :meth:`is_valid` is true. With ``live=True`` (as-you-type feedback) an
    empty name is not an error yet.
    """

    name = forms.CharField(
        max_length=80,
        error_messages={
            "required": "Give the rule a name.",
            "max_length": "Keep the name to 80 characters or fewer.",
        },
        widget=forms.TextInput(attrs={"class": INPUT, "autocomplete": "off"}),
    )
    logic = forms.ChoiceField(
        choices=[("AND", "all (AND)"), ("OR", "any (OR)")],
        error_messages={
            "required": "Choose AND (all conditions) or OR (any condition).",
            "invalid_choice": "Choose AND (all conditions) or OR (any condition).",
        },
        widget=forms.RadioSelect(attrs={"class": "sr-only"}),
    )
    cooldown_sec = forms.IntegerField(
        min_value=0,
        max_value=86_400,
        error_messages={
            "required": "Give the cooldown in seconds (0 for none).",
            "invalid": "Enter the cooldown as a whole number of seconds.",
            "min_value": "The cooldown can't be negative.",
            "max_value": "The cooldown can be at most 86400 seconds (24 hours).",
        },
        widget=forms.NumberInput(attrs={"class": INPUT, "min": 0, "max": 86400, "step": 1}),
    )
    trigger = forms.ChoiceField(
        choices=[("level", "level: every true bar"), ("edge", "edge: when it turns true")],
        error_messages={
            "required": "Choose the level or the edge trigger.",
            "invalid_choice": "Choose the level or the edge trigger.",
        },
        widget=forms.Select(attrs={"class": INPUT}),
    )
    side = forms.ChoiceField(
        required=False,
        choices=list(SIDE_LABELS.items()),
        error_messages={"invalid_choice": "Choose the side: none, buy or sell."},
        widget=forms.Select(attrs={"class": INPUT}),
    )
    text = forms.CharField(
        required=False,
        max_length=2000,
        error_messages={"max_length": "Keep the rule text to 2000 characters or fewer."},
        widget=forms.TextInput(
            attrs={
                "class": INPUT + " font-mono",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "PRICE > MA5 AND MA5 > MA10",
            }
        ),
    )

    def __init__(
        self,
        data=None,
        *,
        rule: Rule | None = None,
        live: bool = False,
        bar_seconds: int | None = None,
        **kwargs,
    ):
        self.rule = rule
        self.live = live
        # The run's bar size (the Settings page): timeframes must fit it. None: not checked.
        self.bar_seconds = bar_seconds
        self.initial_definition: dict[str, Any] | None = None
        if data is None:
            definition = rule.definition if rule is not None else DEFAULT_RULE_DEFINITION
            self.initial_definition = definition
            kwargs.setdefault(
                "initial",
                {
                    "name": rule.name if rule is not None else "",
                    "logic": definition.get("logic", "AND"),
                    "cooldown_sec": definition.get("cooldown_sec", 60),
                    "trigger": definition.get("trigger", "level"),
                    "side": definition.get("side") or "",
                },
            )
            self.rows = rows_from_definition(definition)
        else:
            self.rows = rows_from_data(data)
        super().__init__(data, **kwargs)
        if live:
            self.fields["name"].required = False
        for name in ("name", "logic", "cooldown_sec", "trigger", "side", "text"):
            self.fields[name].widget.attrs["aria-describedby"] = f"err-{name}"
        self.conditions_error = ""
        self.text_error = ""
        self.definition: dict[str, Any] | None = None
        self.focus_key = ""
        # Which of the two the trader means (see use_what_is_shown): the text box's rule when
        # it wins, and whether neither may be saved (the box doesn't parse, or both changed).
        self.text_rule: dict[str, Any] | None = None
        self.text_blocked = False
        self.text_applied = False
        self.shown_text = ""
        self.shown_rows = ""

    # Row editing (the htmx endpoints and the no-JS buttons share these).

    def add_row(self) -> None:
        if len(self.rows) >= MAX_CONDITIONS:
            self.conditions_error = f"A rule has at most {MAX_CONDITIONS} conditions."
            return
        row = ConditionRow(new_row_key())
        self.rows.append(row)
        self.focus_key = row.key

    def remove_row(self, key: str) -> None:
        index = next((i for i, row in enumerate(self.rows) if row.key == key), None)
        if index is None:
            return
        if len(self.rows) <= 1:
            self.conditions_error = "A rule needs at least one condition."
            return
        del self.rows[index]
        self.focus_key = self.rows[min(index, len(self.rows) - 1)].key

    def apply_text(self) -> bool:
        """Replace the rows (and logic) with the parsed text box; False with ``text_error``."""
        text = self._posted("text")
        try:
            parsed = parse_text(text)
        except RuleError as err:
            self.text_error = sentence(err.message)
            # The swap replaces the box: keep the keyboard in it to fix the text.
            self.fields["text"].widget.attrs.update({"autofocus": True, "aria-invalid": "true"})
            return False
        self.rows = rows_from_definition(parsed)
        for row in self.rows:
            row.key = new_row_key()
        self._post_value("logic", parsed["logic"])
        if self.rows:
            self.focus_key = self.rows[0].key
        self.text_applied = True
        return True

    # The text box and the rows: Save (and Preview) use what the trader sees.

    def _posted(self, name: str) -> str:
        return (self.data.get(name) or "").strip()[:2001] if self.is_bound else ""

    def rows_text(self) -> str:
        """The rows' own canonical text with the chosen logic, or "" while one is invalid."""
        logic = self.data.get("logic") if self.is_bound else self.initial.get("logic", "AND")
        try:
            return format_text({"logic": logic, "conditions": [r.to_json() for r in self.rows]})
        except RuleError:
            return ""

    def use_what_is_shown(self, *, fill_rows: bool) -> None:
        """Decide whether the rows or the text box hold the rule the trader means.

        The page renders the box in agreement with the rows and remembers both in
        ``shown_text`` / ``shown_rows``. The text box wins when it was typed in and the rows
        were not touched since; the rows win when the box was not typed in. When both
        changed and they disagree, nothing is saved and ``text_error`` says so: a typed
        text is never dropped silently. ``fill_rows`` shows the text's rule in the rows (a
        whole page is rendered); the htmx fragments keep the rows they answer for.
        """
        typed_text = self._posted("text")
        if not typed_text:
            return
        rows_text = self.rows_text()
        try:
            parsed: dict[str, Any] | None = parse_text(typed_text)
        except RuleError as err:
            parsed, problem = None, sentence(err.message)
        if parsed is not None and rows_text and format_text(parsed) == rows_text:
            return
        if typed_text == self._posted("shown_text"):
            return  # the box is as the page showed it: the rows changed since
        if rows_text and rows_text != self._posted("shown_rows"):
            self.text_blocked = True
            self.text_error = (
                "The text box and the rows say different things and both changed: press "
                "Fill rows to use the text, or clear the text box to keep the rows."
            )
        elif parsed is None:
            self.text_blocked = True
            self.text_error = problem
        else:
            self.text_rule = parsed
            if fill_rows:
                self.rows = rows_from_definition(parsed)
                for row in self.rows:
                    row.key = new_row_key()
                self._post_value("logic", parsed["logic"])

    def _post_value(self, name: str, value: str) -> None:
        """Change one posted value (the posted data is immutable: a changed copy replaces it)."""
        data = cast(QueryDict, self.data).copy()
        data[name] = value
        self.data = data

    def sync_text_box(self) -> None:
        """What the text box and its two hidden companions render with."""
        rows_text = self.rows_text()
        if not self.is_bound:
            self.initial["text"] = self.shown_text = self.shown_rows = rows_text
            return
        typed_text = self._posted("text")
        try:
            agrees = bool(rows_text) and format_text(parse_text(typed_text)) == rows_text
        except RuleError:
            agrees = False
        if agrees or self.text_applied:
            self.shown_text, self.shown_rows = typed_text, rows_text
            return
        if not typed_text or typed_text == self._posted("shown_text"):
            box = rows_text or typed_text
            self._post_value("text", box)
            self.shown_text = box
            self.shown_rows = rows_text or self._posted("shown_rows")
            return
        # Typed and disagreeing: keep what the page knew, so Save still sees what changed.
        self.shown_text, self.shown_rows = self._posted("shown_text"), self._posted("shown_rows")

    # Validation

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        if not name and not self.live:
            raise ValidationError("Give the rule a name.")
        if name and not self.live:
            taken = Rule.objects.filter(name=name)
            if self.rule is not None:
                taken = taken.exclude(pk=self.rule.pk)
            if taken.exists():
                raise ValidationError(f"A rule named “{name}” already exists; choose another name.")
        return name

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.text_blocked:
            return cleaned
        if self.text_rule is not None:
            return self._clean_text_rule(cleaned)
        self.conditions_error = self.conditions_error or ""
        for row in self.rows:
            row.errors = {}
            for part in ("left", "op", "right"):
                problem = _row_problem(row, part)
                if problem:
                    row.errors[part] = problem
        if not self.rows:
            self.conditions_error = "Add at least one condition."
        elif len(self.rows) > MAX_CONDITIONS:
            self.conditions_error = (
                f"A rule has at most {MAX_CONDITIONS} conditions; this one has {len(self.rows)}."
            )
        if self.conditions_error or any(row.errors for row in self.rows):
            return cleaned
        if not all(key in cleaned for key in ("logic", "cooldown_sec", "trigger", "side")):
            return cleaned
        draft = {
            "logic": cleaned["logic"],
            "conditions": [row.to_json() for row in self.rows],
            **self._settings_fields(cleaned),
        }
        try:
            rule_def = validate_definition(draft)
        except RuleError as err:
            self.add_rule_error(err)
            return cleaned
        problem = self._timeframe_problem(rule_def)
        if problem:
            self._put_timeframe_problem(problem)
        else:
            self.definition = rule_def.to_json()
        return cleaned

    @staticmethod
    def _settings_fields(cleaned: dict[str, Any]) -> dict[str, Any]:
        """Cooldown, trigger and side (left out when none) as the definition holds them."""
        fields = {"cooldown_sec": cleaned["cooldown_sec"], "trigger": cleaned["trigger"]}
        if cleaned.get("side"):
            fields["side"] = cleaned["side"]
        return fields

    def _timeframe_problem(self, rule_def: RuleDef) -> str:
        """Why a timeframe of the rule doesn't fit the Settings page's bar size ('' if fine)."""
        if self.bar_seconds is None:
            return ""
        problem = timeframe_problem(rule_def, self.bar_seconds)
        if not problem:
            return ""
        return sentence(f"{problem} (the bar size is set on the Settings page)")

    def _put_timeframe_problem(self, problem: str) -> None:
        """In the slot of the first operand it names, else under the conditions."""
        named = problem.split(" ", 1)[0].rstrip(":")
        for row in self.rows:
            for part in ("left", "right"):
                if canonical_operand(row.operand(part)) == named:
                    row.errors[part] = problem
                    return
        self.conditions_error = problem

    def _clean_text_rule(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The text box's rule, with the cooldown, trigger and side of the fields."""
        if not all(key in cleaned for key in ("cooldown_sec", "trigger", "side")):
            return cleaned
        assert self.text_rule is not None
        draft = {**self.text_rule, **self._settings_fields(cleaned)}
        try:
            rule_def = validate_definition(draft)
        except RuleError as err:
            self.text_error = sentence(err.message)
            self.text_blocked = True
            return cleaned
        problem = self._timeframe_problem(rule_def)
        if problem:
            self.text_error = problem
            self.text_blocked = True
        else:
            self.definition = rule_def.to_json()
        return cleaned

    def add_rule_error(self, err: RuleError) -> None:
        """Put a core error in the slot of the field it names."""
        message = sentence(err.message)
        match = re.fullmatch(r"conditions\[(\d+)\]\.(left|op|right)", err.field)
        if match and int(match[1]) < len(self.rows):
            self.rows[int(match[1])].errors[match[2]] = message
        elif err.field in ("logic", "cooldown_sec", "trigger", "side", "name"):
            self.add_error(err.field, message)
        elif err.field == "text":
            self.text_error = message
        else:
            self.conditions_error = message
        self.definition = None

    def add_service_error(self, err: ValidationError) -> None:
        """A service refused the save: show its sentences where they belong."""
        if hasattr(err, "error_dict"):
            for key, errors in err.message_dict.items():
                target = "name" if key == "name" else None
                for message in errors:
                    # Model-level definition errors read "conditions[0].left: ..." (RuleError).
                    self.add_error(target, sentence(message))
        else:
            for message in err.messages:
                self.add_error(None, sentence(message))

    def is_valid(self) -> bool:
        valid = super().is_valid()
        return (
            valid
            and self.definition is not None
            and not self.text_blocked
            and not self.conditions_error
            and not any(row.errors for row in self.rows)
        )

    @property
    def rule_def(self) -> RuleDef | None:
        return validate_definition(self.definition) if self.definition is not None else None

    @property
    def draft_rule_def(self) -> RuleDef | None:
        """The rule as the page shows it: the valid draft, or the stored rule (or the
        default) before anything was typed; None while the draft is invalid."""
        if self.definition is not None:
            return self.rule_def
        if not self.is_bound and self.initial_definition is not None:
            try:
                return validate_definition(self.initial_definition)
            except RuleError:
                return None
        return None

    def volume_warning(self, instruments: Iterable[Instrument]) -> str:
        """:func:`no_volume_warning` for the draft on ``instruments``. While the draft is
        incomplete (a row just added, another row's typo) its rows as typed are read, so the
        warning doesn't come and go with each keystroke."""
        rule_def = self.draft_rule_def
        if rule_def is not None:
            return no_volume_warning(rule_def, instruments)
        operands = [row.operand(part) for row in self.rows for part in ("left", "right")]
        return no_volume_sentence(instruments) if reads_volume(operands) else ""

    @property
    def text_form(self) -> str:
        """The draft's canonical text, or "" while it is invalid."""
        if self.text_blocked:
            return ""
        if self.definition is not None:
            return format_text(self.definition)
        if not self.is_bound:
            logic = self.initial.get("logic", "AND")
            try:
                return format_text({"logic": logic, "conditions": [r.to_json() for r in self.rows]})
            except RuleError:
                return ""
        return ""

    def field_slots(self) -> list[tuple[str, str]]:
        """(slot id, message) of the error slots outside the conditions section."""
        return [
            (f"err-{name}", " ".join(map(str, self.errors.get(name, []))) if self.is_bound else "")
            for name in ("name", "cooldown_sec", "trigger", "side")
        ]

    def condition_slots(self) -> list[tuple[str, str]]:
        """(slot id, message) of the error slots inside the conditions section."""
        logic = " ".join(map(str, self.errors.get("logic", []))) if self.is_bound else ""
        slots = [
            ("err-logic", logic),
            ("err-conditions", self.conditions_error),
            ("err-text", self.text_error),
        ]
        for row in self.rows:
            for part in ("left", "op", "right"):
                slots.append((f"err-{row.key}-{part}", row.errors.get(part, "")))
        return slots
