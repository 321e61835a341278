"""Numbers read from text that may be missing or junk (Redis fields, headers, stored JSON)."""
from __future__ import annotations

import math
from typing import Any


def opt_float(value: Any, *, minimum: float | None = None) -> float | None:
    """A finite number, or None when missing, empty, unparsable or below `minimum`."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        return None
    return number


def opt_int(value: Any) -> int | None:
    """A whole number (`"5"`, `"5.0"`), or None when missing or junk."""
    number = opt_float(value)
    return int(number) if number is not None else None
