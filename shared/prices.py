"""Prices as Sofascore states them: the fraction (`6/5`) is the price, decimal odds are 1 + it.

The one parser of fractional odds: line movement and the odds shown in alerts both read prices here.

What a fractional price may be written as, and how each is told apart (by its shape, never by its size):
- `a/b` (`6/5`, `100/30`): a fraction;
- a whole number (`2`): a fraction over 1 (`2/1`);
- `EVS`, `Evens`, `evens`, `Even` (any case): even money, `1/1`;
- a number with a decimal point (`2.50`): decimal odds that slipped into the fractional
  field, read as such (`2.50` is `3/2`); decimal odds must be above 1. A comma is not read as a
  decimal point: `1,000` could as well be a thousand.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

_FRACTION = re.compile(r"(\d+)\s*(?:/\s*(\d+))?", re.ASCII)
_DECIMAL = re.compile(r"(\d+)\.(\d+)", re.ASCII)
_EVENS = frozenset({"evs", "evens", "even"})


def parse_fraction(text: str) -> Fraction | None:
    """The fraction a price stands for (`6/5` -> 6/5, `2` -> 2, `EVS` -> 1, `2.50` -> 3/2); None for junk.

    Junk: anything else, a zero denominator, decimal odds of 1 or less.
    """
    text = text.strip()
    if text.casefold() in _EVENS:
        return Fraction(1)
    if match := _FRACTION.fullmatch(text):
        numerator, denominator = int(match.group(1)), int(match.group(2) or 1)
        return Fraction(numerator, denominator) if denominator else None
    if match := _DECIMAL.fullmatch(text):
        decimal = Fraction(f"{match.group(1)}.{match.group(2)}")
        return decimal - 1 if decimal > 1 else None
    return None


def decimal_of(fractional: str | None, decimal: float | None = None) -> Fraction | None:
    """Decimal odds, exact from the fraction when there is one, else from a usable decimal (> 1)."""
    if fractional:
        value = parse_fraction(fractional)
        if value is not None:
            return 1 + value
    return Fraction(str(decimal)) if decimal and math.isfinite(decimal) and decimal > 1 else None
