"""How many requests the fetcher made, per minute and kind: the only reader and writer (status shows them).

One hash per minute (`requests_minute` in shared/keys.py), field = request kind, value = count; each
lives two hours, so the last hour can always be summed and nothing needs pruning. Lost counts (Redis
away) only make the figure low; they never change what is fetched (the budget itself is in memory,
`fetcher.budget`).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from shared.keys import Keys
from shared.redisconn import text

KEEP_SECONDS = 2 * 3600
HOUR_MINUTES = 60


def minute_of(at: float) -> int:
    return int(at // 60)


def record(conn: redis.Redis, keys: Keys, counts: Mapping[str, int], at: float) -> None:
    """Add `counts` (kind -> requests) to the minute of `at`, in one round trip."""
    if not counts:
        return
    key = keys.requests_minute(minute_of(at))
    pipe = conn.pipeline(transaction=False)
    for kind, count in counts.items():
        pipe.hincrby(key, kind, count)
    pipe.expire(key, KEEP_SECONDS)
    pipe.execute()


@dataclass(frozen=True)
class Usage:
    """The last hour's requests: by kind, and the busiest minute."""

    by_kind: dict[str, int]
    busiest_minute: int

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def last_hour(conn: redis.Redis, keys: Keys, now: float) -> Usage:
    """The 60 minutes up to and including the current one."""
    this_minute = minute_of(now)
    pipe = conn.pipeline(transaction=False)
    for minute in range(this_minute - HOUR_MINUTES + 1, this_minute + 1):
        pipe.hgetall(keys.requests_minute(minute))
    by_kind: Counter[str] = Counter()
    busiest = 0
    for raw in pipe.execute():
        minute_total = 0
        for field, value in raw.items():
            try:
                count = int(text(value))
            except ValueError:
                continue  # garbage in a counter only makes the figure low
            by_kind[text(field)] += count
            minute_total += count
        busiest = max(busiest, minute_total)
    return Usage(dict(by_kind), busiest)
