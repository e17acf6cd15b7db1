"""``{{ value|price:contract }}``: a price at its instrument's precision, with no float noise.

``contract`` is an event's ``contract`` object (DESIGN §7.1); its ``min_tick`` sets the
decimals shown (0.25 → ``6000.50``, 0.00005 → ``1.08005``). A price with more decimals than
the tick (a CSV, a midpoint) shows them all: nothing is ever rounded away on a page. The
digits come from the core (:func:`engine.core.indicators.format_price`), as in every event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from django import template

from engine.core.indicators import format_price, price_decimals

register = template.Library()

LARGEST_SHOWN = 1e15  # beyond any price; shown as Python writes it, not as 300 digits


def tick_decimals(contract: object) -> int:
    """Decimals of the contract's ``min_tick`` (0 when it has none); a whole number given
    instead of a contract is the decimals themselves (``{{ price|price:2 }}``)."""
    if isinstance(contract, int) and not isinstance(contract, bool):
        return min(max(contract, 0), 8)
    if not isinstance(contract, Mapping):
        return 0
    tick = contract.get("min_tick")
    if isinstance(tick, bool) or not isinstance(tick, int | float):
        return 0
    try:
        return price_decimals(float(tick))
    except ValueError:  # zero, negative, NaN: no precision to show
        return 0


def price_text(value: object, contract: object = None) -> str:
    """``value`` (a float as events carry it) at the contract's precision; its own shortest
    digits otherwise. Not a number: as it is (``–`` for None)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value) or abs(value) >= LARGEST_SHOWN:
        return repr(value)
    return format_price(value, tick_decimals(contract))


@register.filter(name="price")
def price_filter(value: object, contract: object = None) -> str:
    return price_text(value, contract)


@register.filter(name="operand")
def operand_filter(value: object, contract: object = None) -> str:
    """An operand's value on a tile: 3 decimals, more when the instrument's tick has more
    (an MA of EURUSD shows 1.08005, not 1.080)."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return f"{value:.{max(3, tick_decimals(contract))}f}"
