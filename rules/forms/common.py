"""What the rule forms share: core messages turned into sentences."""

from __future__ import annotations


def sentence(message: str) -> str:
    """A core message (``unknown operand 'X'; use ...``) as a sentence: capital, full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
