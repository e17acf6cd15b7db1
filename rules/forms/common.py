"""What the rule forms share: the input styling and core messages turned into sentences."""

from __future__ import annotations

INPUT = (
    "w-full rounded border border-slate-700 bg-slate-950 px-2 py-1 text-slate-100 "
    "focus:border-emerald-500 focus:outline-none focus:ring-1 focus:ring-emerald-500 "
    "aria-[invalid=true]:border-rose-500"
)


def sentence(message: str) -> str:
    """A core message (``unknown operand 'X'; use ...``) as a sentence: capital, full stop."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."
