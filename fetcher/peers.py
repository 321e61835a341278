"""The live fetchers and who refreshes the leaderboard: the only reader and writer of those keys.

Sorted set `Keys.fetchers`: member a long-running fetcher's name (`shared.instance.process_name`), score
when it last said it is alive; a fetcher says so at every cycle and at every heartbeat, and one silent for
the heartbeat timeout (half NOTIFIER_LEASE_SECONDS) is gone: its share goes to the others at their next
cycle (`fetcher.share`). A one-off run (`fetch --once`) is no peer: it polls everything, once. The
leaderboard is refreshed by one fetcher at a time: the one that takes `Keys.leaderboard_lock`, held until it
expires (the others adopt the new selection at their next cycle and find the leaderboard no longer due).
"""
from __future__ import annotations

import redis

from shared.keys import Keys
from shared.redisconn import text

LEADERBOARD_LOCK_SECONDS = 300


def alive(conn: redis.Redis, keys: Keys, name: str, now: float, live_seconds: float) -> list[str]:
    """Say `name` is alive; returns the live fetchers (those that said so within `live_seconds`, the heartbeat
    timeout: they say it at every beat), this one included, in one round trip."""
    pipe = conn.pipeline(transaction=False)
    pipe.zadd(keys.fetchers, {name: now})
    pipe.zremrangebyscore(keys.fetchers, "-inf", now - live_seconds)
    pipe.zrange(keys.fetchers, 0, -1)
    _, _, members = pipe.execute()
    return sorted(text(m) for m in members)


def leave(conn: redis.Redis, keys: Keys, name: str) -> None:
    """A clean stop: the others take this fetcher's share at once."""
    conn.zrem(keys.fetchers, name)


def take_leaderboard(conn: redis.Redis, keys: Keys, name: str) -> bool:
    """Whether this fetcher refreshes the leaderboard now (no other one is at it)."""
    return bool(conn.set(keys.leaderboard_lock, name, nx=True, ex=LEADERBOARD_LOCK_SECONDS))

