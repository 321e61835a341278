"""Prices as Sofascore states them: the fraction (`6/5`) is the price, decimal odds are 1 + it.

The one parser of fractional odds: line movement and the odds shown in alerts both read prices here.
"""
from __future__ import annotations

import math
from fractions import Fraction


def parse_fraction(text: str) -> Fraction | None:
    """`6/5` -> 6/5, `2` -> 2; None for junk, a zero denominator or a negative value."""
    numerator, _, denominator = text.strip().partition("/")
    try:
        value = Fraction(int(numerator), int(denominator or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value >= 0 else None


def decimal_of(fractional: str | None, decimal: float | None = None) -> Fraction | None:
    """Decimal odds, exact from the fraction when there is one, else from a usable decimal (> 1)."""
    if fractional:
        value = parse_fraction(fractional)
        if value is not None:
            return 1 + value
    return Fraction(str(decimal)) if decimal and math.isfinite(decimal) and decimal > 1 else None
