"""Watched events and the kick-off rule: the one place that says when a match stops being followed.

An event is watched (sorted set `Keys.watched_events`, member event id, score kick-off) from its
first alerted tip until it kicks off: the processor adds it, and re-adds what the database knows in
case an add was lost between commit and crash; the fetcher polls the odds of the events still ahead
and drops the others. `kicked_off` is the rule; `cutoff` is the same rule as a bound for queries (an
event has kicked off when its start is at or before the cut-off), used by the sorted set here and by
the processor's query of upcoming events.
"""
from __future__ import annotations

from collections.abc import Mapping

import redis

from shared.keys import Keys
from shared.redisconn import text


def cutoff(now: float) -> float:
    """Events starting at or before this have kicked off (the start instant itself counts as started)."""
    return now


def kicked_off(start_ts: float, now: float) -> bool:
    return start_ts <= cutoff(now)


def add(conn: redis.Redis, keys: Keys, events: Mapping[int, float]) -> None:
    """Watch these events (event id -> kick-off); adding one again only rewrites its kick-off."""
    if events:
        conn.zadd(keys.watched_events, {str(event): start for event, start in events.items()})


def due(conn: redis.Redis, keys: Keys, now: float) -> dict[str, float]:
    """Events still ahead (event id -> kick-off), soonest first; those that kicked off leave the set."""
    bound = cutoff(now)
    pipe = conn.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.watched_events, "-inf", bound)
    pipe.zrangebyscore(keys.watched_events, f"({bound!r}", "+inf", withscores=True)
    _, members = pipe.execute()
    return {text(m): float(score) for m, score in members}
