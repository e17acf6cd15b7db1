"""``{{ value|price:contract }}``: a price at its instrument's precision, with no float noise.

``contract`` is an event's ``contract`` object (DESIGN §7.1); its ``min_tick`` sets the
decimals shown (0.25 → ``6000.50``, 0.00005 → ``1.08005``). A price with more decimals than
the tick (a CSV, a demo) shows them all: nothing is ever rounded away on a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django import template

register = template.Library()

MAX_DECIMALS = 8  # the finest tick IB sends (DESIGN §7.1)


def _places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def tick_decimals(contract: object) -> int:
    """Decimals of the contract's ``min_tick`` (0 when it has none)."""
    if not isinstance(contract, Mapping):
        return 0
    tick = contract.get("min_tick")
    if not isinstance(tick, int | float) or isinstance(tick, bool) or not math.isfinite(tick):
        return 0
    if tick <= 0:
        return 0
    return min(MAX_DECIMALS, _places(Decimal(repr(float(tick)))))


def price_text(value: object, contract: object = None) -> str:
    """``value`` (a float as events carry it) at the contract's precision; the float's own
    shortest digits otherwise. Not a number: as it is (``–`` for None)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    try:
        number = Decimal(repr(float(value)) if not isinstance(value, str) else value)
    except (InvalidOperation, ValueError, OverflowError):
        return str(value)
    if not number.is_finite():
        return str(value)
    # Float noise below the finest tick (238.73000000000002) is not a digit of the price.
    try:
        number = round(number, MAX_DECIMALS)
    except InvalidOperation:  # beyond 28 digits: no price, shown as it is
        return str(value)
    places = max(tick_decimals(contract), _places(number))
    return f"{number:.{places}f}"


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
