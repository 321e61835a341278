"""How times read for people: durations, "ago" and "in", and timestamps. The one place for time text."""
from __future__ import annotations

from datetime import datetime, timezone


def duration(seconds: float) -> str:
    """`42 s`, `12 min`, `3 h 5 min`, `2 d` (sign ignored)."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds / 86400:.0f} d"


def ago(seconds: float | None) -> str:
    """`3 min ago`, `just now`, `never`; a negative age reads `in ...`."""
    if seconds is None:
        return "never"
    if seconds < 0:
        return f"in {duration(seconds)}"
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"


def due_in(seconds: float | None) -> str:
    """`in 4 min`, or `2 min overdue` when the moment has passed."""
    if seconds is None:
        return "unknown"
    return f"in {duration(seconds)}" if seconds >= 0 else f"{duration(seconds)} overdue"


def _local(ts: float) -> datetime:
    """The moment in the machine's zone, zone attached (its name, or its UTC offset when it has none)."""
    return datetime.fromtimestamp(ts).astimezone()


def _zone(moment: datetime) -> str:
    return moment.strftime("%Z") or moment.strftime("UTC%z")


def local_clock(ts: float) -> str:
    """`18:04:05 CET`, local time with its zone (the operator may be elsewhere than the machine)."""
    moment = _local(ts)
    return f"{moment:%H:%M:%S} {_zone(moment)}"


def local_stamp(ts: float | None) -> str:
    """`2026-11-22 18:04:05 CET`, local time with its zone; `-` when unknown."""
    if ts is None:
        return "-"
    moment = _local(ts)
    return f"{moment:%Y-%m-%d %H:%M:%S} {_zone(moment)}"


def utc_stamp(ts: float | None, *, seconds: bool = True) -> str:
    """`2026-11-22 18:04:05Z` (or `2026-11-22 18:04 UTC` without seconds); `-` when unknown."""
    if ts is None:
        return "-"
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if seconds else moment.strftime("%Y-%m-%d %H:%M UTC")


def iso_utc(ts: float | None = None) -> str:
    """ISO 8601 in UTC, for machines (Discord's embed timestamp); now when `ts` is None."""
    moment = datetime.fromtimestamp(ts, timezone.utc) if ts is not None else datetime.now(timezone.utc)
    return moment.isoformat()
