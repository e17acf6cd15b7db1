"""Reading untrusted text: JSON with bounded nesting and number sizes, ASCII whole numbers.

Every entry point (pages, admin, CLI, sockets, REST, CSV) reads user text through these, so a
deeply nested document, a 5000-digit number, ``NaN`` or a Unicode digit (``"²".isdigit()`` is
True) becomes one sentence instead of a ``RecursionError`` or a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_CHARS",
    "InputError",
    "clip",
    "load_json",
    "parse_whole",
    "shown",
]

MAX_JSON_DEPTH = 32  # a list of rules of conditions is 4 deep; nothing we read needs more
MAX_NUMBER_CHARS = 40  # longer than any price, id or cooldown a person or TWS writes


class InputError(ValueError):
    """Bad input; ``str()`` is one sentence a user can act on.

    For a JSON syntax error, ``syntax`` is the decoder's reason and ``line``/``column`` its
    position, so a caller can word the sentence for its own file."""

    def __init__(
        self, message: str, *, syntax: str | None = None, line: int = 0, column: int = 0
    ) -> None:
        super().__init__(message)
        self.syntax = syntax
        self.line = line
        self.column = column


def clip(text: str, *, keep: int = 12, limit: int = 24) -> str:
    """``text`` for a message: as it is up to ``limit`` characters, else its first ``keep``
    and its length (a 5000-digit value is named, not printed)."""
    return text if len(text) <= limit else f"{text[:keep]}… ({len(text)} characters)"


def shown(text: str, *, keep: int = 12, limit: int = 24) -> str:
    """:func:`clip` for text a user or a socket sent: unprintable characters (NUL, line
    breaks) written as escapes first, so a sentence quoting it stays one readable line."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return clip(text, keep=keep, limit=limit)


def _number_too_long(text: str) -> InputError:
    shown = text if len(text) <= 24 else f"{text[:12]}…{text[-6:]} ({len(text)} characters)"
    return InputError(f"the number {shown} is too long (at most {MAX_NUMBER_CHARS} characters).")


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"the number {text} is out of range.")
    return value


def _parse_constant(name: str) -> float:
    raise InputError(f"{name} is not a number JSON allows; write a plain number.")


def _depth_exceeds(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def load_json(text: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH) -> object:
    """``json.loads`` for untrusted text; :class:`InputError` with a sentence on any problem.

    Refuses nesting deeper than ``max_depth`` lists/objects, numbers longer than
    ``MAX_NUMBER_CHARS`` characters, ``NaN``/``Infinity`` and numbers that overflow a float.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the text is not UTF-8.") from None
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except json.JSONDecodeError as err:
        raise InputError(
            f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}.",
            syntax=err.msg,
            line=err.lineno,
            column=err.colno,
        ) from None
    except RecursionError:
        raise InputError(f"the JSON is nested too deeply (at most {max_depth} levels).") from None
    if _depth_exceeds(value, max_depth):
        raise InputError(f"the JSON is nested too deeply (at most {max_depth} levels).")
    return value


def parse_whole(raw: str, *, name: str, maximum: int, minimum: int = 0) -> int:
    """A whole number written in ASCII digits, ``minimum..maximum``; else InputError.

    ``"²".isdigit()`` and ``"٣".isdigit()`` are True in Python, and ``int()`` takes the
    latter: only ``0-9`` are accepted here. Length is checked before converting, so a
    5000-digit value costs nothing.
    """
    text = raw.strip()
    shown = clip(text)
    if not (text.isascii() and text.isdigit()):
        raise InputError(f"{name}={shown!r} is not a whole number: use the digits 0-9.")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)) or not minimum <= int(digits) <= maximum:
        raise InputError(f"{name}={shown} is out of range: use {minimum} to {maximum}.")
    return int(digits)
