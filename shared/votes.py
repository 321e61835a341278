"""Matches whose crowd votes are wanted: the processor found a consensus to announce, the fetcher asks once.

Sorted set `Keys.votes_wanted`: member the event id, score its kick-off. The processor adds a match when a
consensus on it waits to be announced (and again at its minute's sync, from the database, in case an add
was lost between commit and crash); the fetcher asks `GET /event/{id}/votes` for the wanted ones not yet
kicked off (`due`), writes the answer to the stream and takes the match off (`done`). The processor then
announces the consensus with the crowd's shares and takes the match off too (its sync may have put it back
in between); a match that kicked off meanwhile leaves the set here and
is never announced (processor/consensus.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from shared.keys import Keys
from shared.redisconn import text


def want(conn: redis.Redis, keys: Keys, events: Mapping[int, float]) -> None:
    """Ask for these matches' votes (event id -> kick-off); `conn` may be a pipeline."""
    if events:
        conn.zadd(keys.votes_wanted, {str(event): start for event, start in events.items()})


def due(conn: redis.Redis, keys: Keys, now: float) -> dict[str, float]:
    """The wanted matches not kicked off (event id -> kick-off), soonest first; the others leave the set."""
    pipe = conn.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.votes_wanted, "-inf", now)
    pipe.zrangebyscore(keys.votes_wanted, f"({now!r}", "+inf", withscores=True)
    _, members = pipe.execute()
    return {text(member): float(score) for member, score in members}


def done(conn: redis.Redis, keys: Keys, events: Iterable[str]) -> None:
    """These matches' votes are in the stream; `conn` may be a pipeline."""
    answered = list(events)
    if answered:
        conn.zrem(keys.votes_wanted, *answered)
