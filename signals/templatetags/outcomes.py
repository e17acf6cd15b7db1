"""Outcome cells (DESIGN §7.3) for the live panel, the history page and the stats tables.

``outcome_cells(horizons, stored)`` pairs each configured horizon with its stored outcome
(``signals.services.outcomes_of``'s inner dict) or None (not final yet, shown "…");
``{{ value|pct }}`` writes a percentage with its sign, ``{{ value|rate }}`` a 0..1 hit rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from django import template

from engine.core.outcomes import horizon_label

register = template.Library()


def outcome_cells(
    horizons: Iterable[int], stored: Mapping[str, Mapping[str, float | None]] | None
) -> list[dict]:
    """One cell per horizon: ``label`` ("1m") and ``outcome`` (the stored values, or None
    while the outcome is not final)."""
    stored = stored or {}
    return [{"label": (label := horizon_label(h)), "outcome": stored.get(label)} for h in horizons]


@register.filter
def pct(value: object, digits: int = 2) -> str:
    """``0.1234`` → ``+0.12%``, ``-0.5`` → ``−0.50%``; "—" for None (no bar in the window)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0:
        return f"{text}%"
    return f"{'+' if value > 0 else '−'}{text}%"


@register.filter
def rate(value: object) -> str:
    """A hit rate 0..1 as a whole percentage (``0.625`` → ``63%``); "—" for None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "—"
    return f"{value * 100:.0f}%"


@register.filter
def sign_class(value: object) -> str:
    """The colour of a return: green above zero, red below, grey otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "text-slate-500"
    if value > 0:
        return "text-emerald-300"
    if value < 0:
        return "text-rose-300"
    return "text-slate-400"
