"""Rule definitions: the JSON model, its validator and the operand vocabulary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

LOGICS: Final = ("AND", "OR")
OPERATORS: Final = (">", "<", ">=", "<=", "crosses_above", "crosses_below")
CROSS_OPERATORS: Final = frozenset({"crosses_above", "crosses_below"})
TRIGGERS: Final = ("level", "edge")
PLAIN_OPERANDS: Final = ("PRICE", "OPEN", "HIGH", "LOW", "VOLUME", "VWAP")
PERIOD_OPERANDS: Final = ("MA", "EMA", "RSI", "BBUPPER", "BBLOWER")
MIN_PERIOD: Final = 2
MAX_PERIOD: Final = 200
MAX_CONDITIONS: Final = 10
MAX_COOLDOWN_SEC: Final = 86_400
# Constants beyond this are certainly typos and would make exact comparisons needlessly big.
MAX_CONSTANT: Final = 1e12
MAX_NAME_LENGTH: Final = 80
MAX_RULE_ID: Final = 2**63 - 1  # what a database integer id holds
SIDES: Final = ("buy", "sell")
# Higher-timeframe operands (``MA20@1m``): the suffix and its length in seconds, shortest first.
TIMEFRAMES: Final[dict[str, int]] = {"5s": 5, "1m": 60, "5m": 300, "15m": 900, "1h": 3600}
TIMEFRAME_NAMES: Final[dict[int, str]] = {seconds: name for name, seconds in TIMEFRAMES.items()}

DEFAULT_RULE_DEFINITION: Final[dict[str, Any]] = {
    "logic": "AND",
    "conditions": [
        {"left": "PRICE", "op": ">", "right": "MA5"},
        {"left": "MA5", "op": ">", "right": "MA10"},
    ],
    "cooldown_sec": 60,
    "trigger": "level",
}

OPERAND_HELP: Final = (
    "use PRICE, MA5, MA10, MA20, MA<n>, EMA<n>, RSI<n>, BBUPPER<n>, BBLOWER<n> "
    f"(n from {MIN_PERIOD} to {MAX_PERIOD}), VWAP, VOLUME, OPEN, HIGH or LOW"
)
OPERATOR_HELP: Final = "use >, <, >=, <=, crosses_above or crosses_below"
TIMEFRAME_HELP: Final = (
    "add @5s, @1m, @5m, @15m or @1h to an operand for a higher timeframe, e.g. MA20@1m"
)

_META_KEYS: Final = ("id", "name", "type")
_DEFINITION_KEYS: Final = ("logic", "conditions", "cooldown_sec", "trigger", "side")
_CONDITION_KEYS: Final = ("left", "op", "right")
_ASCII_DIGITS: Final = frozenset("0123456789")


class RuleError(ValueError):
    """An invalid rule, with the offending field and a sentence a trader can act on."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


Number = int | float


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison; ``right`` is an operand name or a number."""

    left: str
    op: str
    right: str | Number

    @property
    def is_cross(self) -> bool:
        return self.op in CROSS_OPERATORS

    def to_json(self) -> dict[str, Any]:
        return {"left": self.left, "op": self.op, "right": self.right}


@dataclass(frozen=True, slots=True)
class RuleDef:
    """A validated rule. ``rule_id``, ``name`` and ``type`` are metadata, not logic."""

    logic: str
    conditions: tuple[Condition, ...]
    cooldown_sec: int
    trigger: str = "level"
    side: str | None = None
    rule_id: int | None = field(default=None, compare=False)
    name: str = field(default="", compare=False)
    type: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The canonical definition dict (metadata left out; ``side`` only when set)."""
        data: dict[str, Any] = {
            "logic": self.logic,
            "conditions": [c.to_json() for c in self.conditions],
            "cooldown_sec": self.cooldown_sec,
            "trigger": self.trigger,
        }
        if self.side is not None:
            data["side"] = self.side
        return data

    def operands(self) -> frozenset[str]:
        """Names of the operands the rule reads (numbers excluded)."""
        names: set[str] = set()
        for cond in self.conditions:
            names.add(cond.left)
            if isinstance(cond.right, str):
                names.add(cond.right)
        return frozenset(names)

    def timeframes(self) -> frozenset[int]:
        """Lengths in seconds of the higher timeframes the rule's operands name."""
        return frozenset(
            tf for name in self.operands() if (tf := split_timeframe(name)[1]) is not None
        )

    def warmup_bars(self, bar_seconds: int = 5) -> int:
        """Run bars of history needed so every operand is defined, plus one for cross memory.

        An operand on a timeframe of ``k`` run bars needs ``period`` closed TF bars, and the
        first bucket may be partial (history rarely starts on a bucket boundary): ``period *
        k + k`` run bars. With ``bar_seconds`` above the timeframe (an invalid rule for that
        run, see :func:`timeframe_problem`) a TF bar is one run bar.
        """
        need = 1
        for name in self.operands():
            base, tf = split_timeframe(name)
            period = operand_period(base)
            if tf is not None and tf > bar_seconds:
                k = -(-tf // bar_seconds)
                period = period * k + k
            need = max(need, period)
        return need + 1

    @property
    def uses_cross(self) -> bool:
        return any(c.is_cross for c in self.conditions)


def timeframe_problem(rule: RuleDef, bar_seconds: int) -> str | None:
    """Why ``rule`` can't run on ``bar_seconds`` bars (a timeframe shorter than a run bar, or
    not a whole number of them), as a sentence; None when every timeframe fits."""
    run = TIMEFRAME_NAMES.get(bar_seconds, f"{bar_seconds} s")
    for name in sorted(rule.operands()):
        tf = split_timeframe(name)[1]
        if tf is None:
            continue
        if tf < bar_seconds:
            return (
                f"{name} is on a timeframe shorter than the run's {run} bars; "
                f"use @{run} or longer, or a shorter bar size"
            )
        if tf % bar_seconds:
            return (
                f"{name}: the timeframe is not a whole number of the run's {run} bars; "
                f"pick one that is"
            )
    return None


def split_timeframe(name: str) -> tuple[str, int | None]:
    """``"MA20@1m"`` → ``("MA20", 60)``, ``"MA20"`` → ``("MA20", None)``; name canonical."""
    base, at, tf = name.partition("@")
    return (base, TIMEFRAMES[tf]) if at else (name, None)


def operand_period(name: str) -> int:
    """Number of bars after which ``name`` has a value (RSI needs n changes, so n + 1 bars);
    for ``NAME@TF``, closed bars of that timeframe."""
    kind, n = split_operand(name.partition("@")[0])
    if n is None:
        return 1
    return n + 1 if kind == "RSI" else n


def split_operand(name: str) -> tuple[str, int | None]:
    """``"MA20"`` → ``("MA", 20)``, ``"PRICE"`` → ``("PRICE", None)``; name must be canonical
    and without a timeframe (see :func:`split_timeframe`)."""
    if name in PLAIN_OPERANDS:
        return name, None
    i = len(name)
    while i > 0 and name[i - 1] in _ASCII_DIGITS:
        i -= 1
    return name[:i], int(name[i:])


def canonical_operand(token: str) -> str | None:
    """The canonical operand name for ``token`` (case-insensitive), or None if it is not one.

    A timeframe suffix is kept in its canonical lower-case form: ``ma20@1M`` → ``MA20@1m``.
    """
    base, at, tf = token.strip().partition("@")
    if at:
        tf_name = tf.strip().lower()
        if tf_name not in TIMEFRAMES:
            return None
        name = _canonical_base(base)
        return None if name is None else f"{name}@{tf_name}"
    return _canonical_base(base)


def _canonical_base(token: str) -> str | None:
    name = token.strip().upper()
    if name in PLAIN_OPERANDS:
        return name
    i = len(name)
    while i > 0 and name[i - 1] in _ASCII_DIGITS:
        i -= 1
    kind, digits = name[:i], name[i:]
    if kind not in PERIOD_OPERANDS or not digits or len(digits) > 4:
        return None
    n = int(digits)
    if not MIN_PERIOD <= n <= MAX_PERIOD:
        return None
    return f"{kind}{n}"


def operand_problem(token: str, *, where: str = "", number_ok: bool = False) -> str:
    """Why ``token`` is not an operand, as a sentence; ``where`` (e.g. " at position 9")
    follows the quoted token."""
    base, at, tf = token.strip().partition("@")
    if at:
        if tf.strip().lower() not in TIMEFRAMES:
            return f"unknown timeframe in {shown(token)}{where}; {TIMEFRAME_HELP}"
        name = base.strip().upper()
    else:
        name = token.strip().upper()
    i = len(name)
    while i > 0 and name[i - 1] in _ASCII_DIGITS:
        i -= 1
    kind, digits = name[:i], name[i:]
    if kind in PERIOD_OPERANDS and digits:
        return (
            f"unknown operand {shown(token)}{where}; {kind}<n> takes a period n from "
            f"{MIN_PERIOD} to {MAX_PERIOD}"
        )
    if kind in PERIOD_OPERANDS:
        return f"{shown(token)}{where} needs a period, e.g. {kind}14"
    tail = ", or a number" if number_ok else ""
    return f"unknown operand {shown(token)}{where}; {OPERAND_HELP}{tail}"


def shown(value: object) -> str:
    """``value`` for a message, kept short: a value from a dict (not JSON text) may be an int
    of 5000 digits (``str()`` raises past 4300) or a list nested 100 000 deep (``repr()``
    recurses)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if abs(value) < 10**24:
            return repr(value)
        return f"a number of about {value.bit_length() * 30103 // 100000 + 1} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:24]!r}… ({len(value)} characters)"
    return f"a {type(value).__name__}"


def check_name(value: object) -> str:
    """A rule name: text, trimmed, 1 line of at most 80 characters with no control characters.

    Returns the trimmed name (possibly empty: whether a name is required is the caller's call).
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RuleError("name", f'must be text, e.g. "MA Momentum", not {shown(value)}')
    name = value.strip()
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        raise RuleError(
            "name", "contains a control character (a line break, tab or NUL); use one line of text"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise RuleError(
            "name", f"is {len(name)} characters long; use at most {MAX_NAME_LENGTH} characters"
        )
    return name


def check_number(value: Number, field_name: str) -> Number:
    """Reject NaN, infinities and absurd magnitudes; returns the number unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RuleError(field_name, "the number must be finite (not NaN or infinity)")
    if abs(value) > MAX_CONSTANT:
        raise RuleError(
            field_name, f"the number {shown(value)} is too large (limit ±{MAX_CONSTANT:g})"
        )
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_condition(raw: object, index: int) -> Condition:
    where = f"conditions[{index}]"
    if not isinstance(raw, dict):
        raise RuleError(where, "each condition must be an object with left, op and right")
    for key in raw:
        if key not in _CONDITION_KEYS:
            raise RuleError(
                f"{where}.{key}" if isinstance(key, str) else where,
                f"unknown key {shown(key)}; a condition has only left, op and right",
            )
    for key in _CONDITION_KEYS:
        if key not in raw:
            raise RuleError(f"{where}.{key}", "missing; a condition needs left, op and right")

    left = raw["left"]
    if _is_number(left):
        raise RuleError(
            f"{where}.left",
            "the left side must be an indicator or price, not a number; "
            "put the number on the right (e.g. RSI14 < 30)",
        )
    if not isinstance(left, str):
        raise RuleError(f"{where}.left", f"must be an operand name; {OPERAND_HELP}")
    left_name = canonical_operand(left)
    if left_name is None:
        raise RuleError(f"{where}.left", operand_problem(left))

    op = raw["op"]
    op_name = op.strip().lower() if isinstance(op, str) else None
    if op_name not in OPERATORS:
        raise RuleError(f"{where}.op", f"unknown operator {shown(op)}; {OPERATOR_HELP}")

    right = raw["right"]
    right_value: str | Number
    if _is_number(right):
        right_value = check_number(right, f"{where}.right")
    elif isinstance(right, str):
        name = canonical_operand(right)
        if name is not None:
            right_value = name
        else:
            number = parse_number(right.strip())
            if number is None:
                raise RuleError(f"{where}.right", operand_problem(right, number_ok=True))
            right_value = check_number(number, f"{where}.right")
    else:
        raise RuleError(f"{where}.right", f"must be an operand name or a number; {OPERAND_HELP}")
    return Condition(left_name, op_name, right_value)


def parse_number(text: str) -> Number | None:
    """A decimal literal (``30``, ``-1.5``, ``2e3``) as int or float; None if it is not one.

    Only ASCII digits are accepted and the length is capped, so no input can make ``int()``
    or ``float()`` raise or run long.
    """
    if not text or len(text) > 40:
        return None
    body = text[1:] if text[0] in "+-" else text
    mantissa, _, exponent = body.replace("E", "e").partition("e")
    whole, dot, frac = mantissa.partition(".")
    if not (whole or frac) or not set(whole + frac) <= _ASCII_DIGITS:
        return None
    if "e" in body.lower():
        exp_body = exponent[1:] if exponent[:1] in ("+", "-") else exponent
        if not exp_body or not set(exp_body) <= _ASCII_DIGITS:
            return None
        return float(text)
    if dot:
        return float(text)
    return int(text)


def validate_definition(data: object) -> RuleDef:
    """Validate a DESIGN §2 rule dict and return the canonical :class:`RuleDef`.

    Raises :class:`RuleError` naming the first offending field.
    """
    if not isinstance(data, dict):
        raise RuleError("definition", "a rule definition must be a JSON object")
    for key in data:
        if key not in _DEFINITION_KEYS and key not in _META_KEYS:
            raise RuleError(
                key if isinstance(key, str) and len(key) <= 40 else "definition",
                f"unknown field {shown(key)}; a rule has logic, conditions, cooldown_sec, "
                "trigger, side (and optionally id, name, type)",
            )

    rule_id = data.get("id")
    if rule_id is not None and (
        not isinstance(rule_id, int) or isinstance(rule_id, bool) or abs(rule_id) > MAX_RULE_ID
    ):
        raise RuleError("id", f"must be a whole number (at most {MAX_RULE_ID}) or null")
    name = check_name(data.get("name"))
    rule_type = data.get("type")
    if rule_type is not None and not isinstance(rule_type, str):
        raise RuleError("type", "must be text such as 'custom' or 'system'")

    if "logic" not in data:
        raise RuleError("logic", "missing; use AND or OR")
    logic = data["logic"]
    logic_name = logic.strip().upper() if isinstance(logic, str) else None
    if logic_name not in LOGICS:
        raise RuleError("logic", f"unknown logic {shown(logic)}; use AND or OR")

    if "conditions" not in data:
        raise RuleError("conditions", "missing; a rule needs 1 to 10 conditions")
    raw_conditions = data["conditions"]
    if not isinstance(raw_conditions, list | tuple):
        raise RuleError("conditions", "must be a list of 1 to 10 conditions")
    if not 1 <= len(raw_conditions) <= MAX_CONDITIONS:
        raise RuleError(
            "conditions", f"a rule needs 1 to 10 conditions; this one has {len(raw_conditions)}"
        )
    conditions = tuple(_check_condition(raw, i) for i, raw in enumerate(raw_conditions))

    if "cooldown_sec" not in data:
        raise RuleError("cooldown_sec", "missing; give the cooldown in seconds (0 to 86400)")
    cooldown = data["cooldown_sec"]
    if isinstance(cooldown, float) and cooldown.is_integer():
        cooldown = int(cooldown)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool):
        raise RuleError("cooldown_sec", "must be a whole number of seconds from 0 to 86400")
    if not 0 <= cooldown <= MAX_COOLDOWN_SEC:
        raise RuleError(
            "cooldown_sec", f"must be from 0 to 86400 seconds (24 hours); got {shown(cooldown)}"
        )

    trigger = data.get("trigger", "level")
    trigger_name = trigger.strip().lower() if isinstance(trigger, str) else None
    if trigger_name not in TRIGGERS:
        raise RuleError(
            "trigger",
            f"unknown trigger {shown(trigger)}; use 'level' (fires while true) "
            "or 'edge' (fires when it becomes true)",
        )

    side = data.get("side")
    side_name = side.strip().lower() if isinstance(side, str) else side
    if side_name is not None and side_name not in SIDES:
        raise RuleError(
            "side",
            f"unknown side {shown(side)}; use 'buy', 'sell' or null (a signal with no side)",
        )

    return RuleDef(
        logic=logic_name,
        conditions=conditions,
        cooldown_sec=cooldown,
        trigger=trigger_name,
        side=side_name,
        rule_id=rule_id,
        name=name,
        type=rule_type,
    )
