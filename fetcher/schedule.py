"""When to poll next: busier in the evening, calmer at night, a burst right before kick-off times."""
from __future__ import annotations

import random
from datetime import datetime, tzinfo

PEAK_HOURS = range(18, 23)  # 18:00-22:59 local
NIGHT_HOURS = range(0, 6)  # 00:00-05:59 local
PEAK_SECONDS = (210.0, 300.0)
NIGHT_SECONDS = (600.0, 900.0)
DAY_JITTER = 0.2
WEEKEND_FACTOR = 0.85
# Matches kick off on the quarter hour; tips appear in the minutes before, so poll every minute then.
BURST_MINUTE = 9  # minute-of-quarter from which a burst runs (the 6 minutes before :00/:15/:30/:45)
BURST_SECONDS = 60.0
# Land a little inside the burst window, not on its edge, so clock jitter cannot make us miss it.
BURST_ENTRY_MARGIN = 1.0


def _seconds_into_quarter(local: datetime) -> float:
    return (local.minute % 15) * 60 + local.second + local.microsecond / 1e6


def in_burst(local: datetime) -> bool:
    """Kick-off bursts run outside the night: few matches start then, and quiet nights keep us unnoticed."""
    return local.hour not in NIGHT_HOURS and local.minute % 15 >= BURST_MINUTE


def base_interval(local: datetime, scan_interval_minutes: float, rng: random.Random) -> float:
    """Seconds by time of day (peak, night or day), before the weekend factor."""
    if local.hour in PEAK_HOURS:
        return rng.uniform(*PEAK_SECONDS)
    if local.hour in NIGHT_HOURS:
        return rng.uniform(*NIGHT_SECONDS)
    base = scan_interval_minutes * 60
    return rng.uniform(base * (1 - DAY_JITTER), base * (1 + DAY_JITTER))


def next_poll_seconds(now: datetime, *, scan_interval_minutes: float, tz: tzinfo, rng: random.Random) -> float:
    """Seconds until the next poll for an aware `now`, judged by the local time in `tz`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(tz)
    if in_burst(local):
        return BURST_SECONDS
    seconds = base_interval(local, scan_interval_minutes, rng)
    if local.weekday() >= 5:
        seconds *= WEEKEND_FACTOR
    if local.hour in NIGHT_HOURS:
        return seconds
    # Never jump over the next burst window. DST moves clocks by whole hours, so the local quarter-hour
    # phase is enough (no wall-clock arithmetic across a transition).
    until_burst = BURST_MINUTE * 60 - _seconds_into_quarter(local)
    return min(seconds, until_burst + BURST_ENTRY_MARGIN)


def longest_interval(scan_interval_minutes: float) -> float:
    """The longest wait the schedule can choose between two cycles (weekends only shorten it)."""
    day = scan_interval_minutes * 60 * (1 + DAY_JITTER)
    return max(PEAK_SECONDS[1], NIGHT_SECONDS[1], day)
