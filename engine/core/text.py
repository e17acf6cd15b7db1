"""Text form of rules (``PRICE > MA5 AND MA5 > MA10``): a tokenizer, a parser and a formatter.

Hand-written scanner and recursive-free parser; nothing here evaluates code.
"""

from __future__ import annotations

from typing import Any, Final

from engine.core.rules import (
    MAX_CONDITIONS,
    OPERATOR_HELP,
    OPERATORS,
    RuleDef,
    RuleError,
    canonical_operand,
    check_number,
    operand_problem,
    parse_number,
    validate_definition,
)

MAX_TEXT_LENGTH: Final = 2000
_WORD_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_NUMBER_START: Final = frozenset("0123456789.+-")
_NUMBER_CHARS: Final = frozenset("0123456789.eE+-")
_SPACE: Final = frozenset(" \t\r\n")
_EXAMPLE: Final = "write conditions like 'PRICE > MA5 AND MA5 > MA10'"
# The builder's operator dropdown shows these labels; the text box accepts them too.
_SIGN_LABELS: Final = {"≥": ">=", "≤": "<="}
_CROSS_WORD: Final = "crosses"
_CROSS_DIRECTIONS: Final = ("above", "below")

# Token kinds
WORD, NUMBER, SYMBOL = "word", "number", "symbol"


def _fail(message: str) -> RuleError:
    return RuleError("text", message)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """Split ``text`` into ``(kind, token, position)`` triples; position is 1-based."""
    tokens: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        start = i
        if ch in "<>":
            i += 2 if text[i + 1 : i + 2] == "=" else 1
            tokens.append((SYMBOL, text[start:i], start + 1))
        elif ch in _SIGN_LABELS:
            i += 1
            tokens.append((SYMBOL, _SIGN_LABELS[ch], start + 1))
        elif ch in _NUMBER_START and (
            ch not in "+-" or text[i + 1 : i + 2] in _NUMBER_START - {"+", "-"}
        ):
            i += 1
            while i < n and (
                text[i] in _NUMBER_CHARS and (text[i] not in "+-" or text[i - 1] in "eE")
            ):
                i += 1
            tokens.append((NUMBER, text[start:i], start + 1))
        elif ch in _WORD_CHARS:
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            if i < n and text[i] == "@":  # a timeframe suffix: MA20@1m
                i += 1
                while i < n and text[i] in _WORD_CHARS:
                    i += 1
            tokens.append((WORD, text[start:i], start + 1))
        else:
            if ch in "()":
                raise _fail(
                    f"parentheses are not supported (position {start + 1}); "
                    "a rule joins its conditions with AND or with OR"
                )
            if ch == "=":
                raise _fail(
                    f"unexpected '=' at position {start + 1}; "
                    f"comparisons are {OPERATOR_HELP.removeprefix('use ')}"
                )
            raise _fail(f"unexpected character {ch!r} at position {start + 1}; {_EXAMPLE}")
    return tokens


def _describe(token: tuple[str, str, int] | None) -> str:
    if token is None:
        return "the end of the text"
    return f"{token[1]!r} at position {token[2]}"


def parse_text(text: str) -> dict[str, Any]:
    """Parse rule text into ``{"logic": ..., "conditions": [...]}`` with canonical names.

    Raises :class:`RuleError` with ``field == "text"`` naming the position or token.
    """
    if not isinstance(text, str):
        raise _fail("the rule text must be a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise _fail(f"the rule text is too long ({len(text)} characters; limit {MAX_TEXT_LENGTH})")
    tokens = tokenize(text)
    if not tokens:
        raise _fail(f"the rule text is empty; {_EXAMPLE}")

    conditions: list[dict[str, Any]] = []
    logic: str | None = None
    pos = 0

    def peek() -> tuple[str, str, int] | None:
        return tokens[pos] if pos < len(tokens) else None

    while True:
        # left operand
        tok = peek()
        if tok is None or tok[0] != WORD:
            if tok is not None and tok[0] == NUMBER:
                raise _fail(
                    f"a condition must start with an indicator or price, found number "
                    f"{_describe(tok)}; put the number on the right (e.g. RSI14 < 30)"
                )
            raise _fail(f"expected an operand such as PRICE or MA5, found {_describe(tok)}")
        left = canonical_operand(tok[1])
        if left is None:
            raise _fail(operand_problem(tok[1], where=f" at position {tok[2]}"))
        pos += 1

        # operator
        tok = peek()
        op = tok[1].lower() if tok is not None and tok[0] in (WORD, SYMBOL) else None
        if op == _CROSS_WORD and tok is not None:
            # The dropdown's two-word label: "crosses above" / "crosses below".
            nxt = tokens[pos + 1] if pos + 1 < len(tokens) else None
            direction = nxt[1].lower() if nxt is not None and nxt[0] == WORD else None
            if direction not in _CROSS_DIRECTIONS:
                raise _fail(
                    f"expected an operator after {left!r}, found {_describe(tok)} followed by "
                    f"{_describe(nxt)}; write 'crosses above' or 'crosses below'"
                )
            op = f"{_CROSS_WORD}_{direction}"
            pos += 1
        elif tok is None or op not in OPERATORS:
            raise _fail(
                f"expected an operator after {left!r}, found {_describe(tok)}; {OPERATOR_HELP}"
            )
        pos += 1

        # right operand or number
        tok = peek()
        right: str | int | float
        if tok is not None and tok[0] == WORD:
            name = canonical_operand(tok[1])
            if name is None:
                raise _fail(operand_problem(tok[1], where=f" at position {tok[2]}", number_ok=True))
            right = name
        elif tok is not None and tok[0] == NUMBER:
            number = parse_number(tok[1])
            if number is None:
                raise _fail(f"{_describe(tok)} is not a valid number")
            try:
                right = check_number(number, "text")
            except RuleError as err:
                raise _fail(f"{err.message} (position {tok[2]})") from None
        else:
            raise _fail(f"expected an operand or a number after {op!r}, found {_describe(tok)}")
        pos += 1
        conditions.append({"left": left, "op": op, "right": right})

        # AND / OR or end
        tok = peek()
        if tok is None:
            break
        joiner = tok[1].upper() if tok[0] == WORD else None
        if joiner not in ("AND", "OR"):
            raise _fail(f"expected AND, OR or the end of the rule, found {_describe(tok)}")
        if logic is not None and joiner != logic:
            raise _fail(
                f"mixing AND and OR is not supported ({_describe(tok)}); "
                "a rule uses a single logic for all its conditions"
            )
        logic = joiner
        if len(conditions) >= MAX_CONDITIONS:
            raise _fail(f"a rule has at most {MAX_CONDITIONS} conditions")
        pos += 1
    return {"logic": logic or "AND", "conditions": conditions}


def format_number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def format_text(rule: RuleDef | dict[str, Any]) -> str:
    """Canonical text of a rule's conditions (cooldown and trigger are not part of the text).

    A dict is validated first; only ``logic`` and ``conditions`` are read from it.
    """
    if not isinstance(rule, RuleDef):
        if not isinstance(rule, dict):
            raise RuleError("definition", "a rule definition must be a JSON object")
        rule = validate_definition(
            {"logic": rule.get("logic"), "conditions": rule.get("conditions"), "cooldown_sec": 0}
        )
    parts = []
    for cond in rule.conditions:
        right = cond.right if isinstance(cond.right, str) else format_number(cond.right)
        parts.append(f"{cond.left} {cond.op} {right}")
    return f" {rule.logic} ".join(parts)
