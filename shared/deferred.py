"""Deferred tips waiting for their match: the set the fetcher reads to refresh matches before they alert.

Sorted set `Keys.deferred_tips`: member `<event id>:<tip key>`, score the match's kick-off as last known.
The processor adds a tip when it stores it deferred or learns a new kick-off, removes it once the tip is
alerted, deleted by its predictor, or its match is no longer upcoming (postponed, canceled, started), and
re-adds what the database holds in case an add was lost between commit and crash. The fetcher asks for
the due ones (`due`): kick-off within the look-ahead, the same window in which a tip alerts
(`processor.alertable`); members past their kick-off and grace period leave the set there.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from shared.keys import Keys
from shared.redisconn import text


def member(event_id: int, tip_key: str) -> str:
    return f"{event_id}:{tip_key}"


def split(value: str) -> tuple[int, str] | None:
    """(event id, tip key) of a member; None if it is not one (event ids are digits, tip keys may hold ':')."""
    event, _, key = value.partition(":")
    return (int(event), key) if event.isdigit() and key else None


def add(conn: redis.Redis, keys: Keys, members: Mapping[str, float]) -> None:
    """Wait for these (member -> kick-off); adding one again only rewrites its kick-off."""
    if members:
        conn.zadd(keys.deferred_tips, dict(members))


def remove(conn: redis.Redis, keys: Keys, members: Iterable[str]) -> None:
    gone = list(members)
    if gone:
        conn.zrem(keys.deferred_tips, *gone)


def due(conn: redis.Redis, keys: Keys, now: float, lookahead_hours: float,
        grace_minutes: float) -> list[tuple[int, str]]:
    """(event id, tip key) of the tips whose match kicks off within the look-ahead, soonest first."""
    past = now - grace_minutes * 60
    pipe = conn.pipeline(transaction=False)
    pipe.zremrangebyscore(keys.deferred_tips, "-inf", past)
    pipe.zrangebyscore(keys.deferred_tips, f"({past!r}", now + lookahead_hours * 3600)
    _, members = pipe.execute()
    return [pair for pair in (split(text(m)) for m in members) if pair is not None]
