"""Reading HTTP response headers the same way for Sofascore and Discord: by name, and Retry-After."""
from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any


def header(headers: Mapping[str, Any], name: str) -> str | None:
    """A header's value, case-insensitively; the first when it was sent more than once (tls_client gives lists)."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def retry_after(value: str | None, now: float, *, most: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date); None when absent or junk.

    `most` caps it: a bogus header must not silence a process for days.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    seconds = max(seconds, 0.0)
    return min(seconds, most) if most is not None else seconds
