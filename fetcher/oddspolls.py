"""When each watched event's odds were last answered, and which events have none: the only reader and writer.

Two hashes (names in shared/keys.py), one field per watched event: `odds_fetched` (the time of the
last answer, 200 or 404) feeds the cadence (`fetcher.cadence`), `odds_missing` (the time of the first
404 in a row) slows the event to the slowest band and lets the 404 be logged once. Fields of events
that left the watched set (kicked off) are deleted when read, so both stay the size of that set.
A garbled value reads as "never fetched" (the event is simply asked again).
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import redis

from shared.keys import Keys
from shared.numbers import opt_float
from shared.redisconn import text


def read(conn: redis.Redis, keys: Keys, watched: Collection[str]) -> tuple[dict[str, float], set[str]]:
    """(last answer per event, events without odds) for the watched events; the others' fields are pruned."""
    pipe = conn.pipeline(transaction=False)
    pipe.hgetall(keys.odds_fetched)
    pipe.hgetall(keys.odds_missing)
    raw_fetched, raw_missing = pipe.execute()
    fetched: dict[str, float] = {}
    stale: dict[str, list[str]] = {keys.odds_fetched: [], keys.odds_missing: []}
    for field, value in raw_fetched.items():
        event = text(field)
        at = opt_float(text(value))
        if event not in watched:
            stale[keys.odds_fetched].append(event)
        elif at is not None:
            fetched[event] = at
    missing = set()
    for field in raw_missing:
        event = text(field)
        if event in watched:
            missing.add(event)
        else:
            stale[keys.odds_missing].append(event)
    if any(stale.values()):
        pipe = conn.pipeline(transaction=False)
        for key, events in stale.items():
            if events:
                pipe.hdel(key, *events)
        pipe.execute()
    return fetched, missing


def record(conn: redis.Redis, keys: Keys, answered: Mapping[str, float], missing: Iterable[str],
           found: Iterable[str]) -> None:
    """One round trip: the events answered (and when), those newly without odds, those that have odds again."""
    missing, found = list(missing), list(found)
    pipe = conn.pipeline(transaction=False)
    if answered:
        pipe.hset(keys.odds_fetched, mapping={e: repr(at) for e, at in answered.items()})  # type: ignore[arg-type]
    if missing:
        pipe.hset(keys.odds_missing, mapping={e: repr(answered.get(e, 0.0)) for e in missing})  # type: ignore[arg-type]
    if found:
        pipe.hdel(keys.odds_missing, *found)
    pipe.execute()
