"""Alerted tips still open after their match should be over: the set the fetcher reads to settle them.

A tip is settled from its predictor's page (shared/settlements.py). Page 0 is read every cycle, so a tip
still there settles by itself; one pushed further down by newer tips, or whose match ran late, does not.
For those, sorted set `Keys.unsettled`: member `<event id>:<predictor id>`, score when to look next. The
processor keeps the members (`sync`, each minute, from the database: tips alerted and open whose match
kicked off between `GIVE_UP_SECONDS` and `SETTLE_AFTER_SECONDS` ago; settled or given-up ones leave). The
fetcher keeps the scores: it asks `GET /event/{id}` for the due ones and, for a finished match, reads the
predictor's next pages until the tip is seen (its page settles it); then looks again `RETRY_SECONDS` later
(`checked`). A tip never seen again (deleted, or deeper than PREDICTION_MAX_PAGES) stays open: never guessed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from shared.keys import Keys
from shared.redisconn import text

# A match is over about two hours after kick-off; an hour more lets page 0's regular reads settle its tips.
SETTLE_AFTER_SECONDS = 3 * 3600
RETRY_SECONDS = 6 * 3600  # a match late, suspended or without a verdict yet: asked again this much later
GIVE_UP_SECONDS = 3 * 86_400  # the tip stays open past this


def member(event_id: int, predictor_id: str) -> str:
    return f"{event_id}:{predictor_id}"


def split(value: str) -> tuple[int, str] | None:
    event, _, predictor = value.partition(":")
    return (int(event), predictor) if event.isdigit() and predictor else None


def sync(conn: redis.Redis, keys: Keys, members: Mapping[str, float]) -> None:
    """The processor's view (member -> first look): new members added, when to look kept for known ones,
    members no longer open removed."""
    stale = {text(m) for m in conn.zrange(keys.unsettled, 0, -1)} - set(members)
    pipe = conn.pipeline(transaction=False)
    if members:
        pipe.zadd(keys.unsettled, dict(members), nx=True)
    if stale:
        pipe.zrem(keys.unsettled, *stale)
    pipe.execute()


def due(conn: redis.Redis, keys: Keys, now: float) -> list[tuple[int, str]]:
    """(event id, predictor id) of the tips to look for now."""
    members = conn.zrangebyscore(keys.unsettled, "-inf", now)
    return [pair for pair in (split(text(m)) for m in members) if pair is not None]


def checked(conn: redis.Redis, keys: Keys, items: Iterable[tuple[int, str]], next_at: float) -> None:
    """Looked for: next time at `next_at` (only members the processor still keeps)."""
    looked = {member(event, predictor): next_at for event, predictor in items}
    if looked:
        conn.zadd(keys.unsettled, looked, xx=True)
