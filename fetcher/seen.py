"""Tips the fetcher has already written to the stream, per predictor: how it tells that a page brings nothing new.

One sorted set per predictor (`Keys.seen_tips`): member the tip key (`shared.tips.tip_key`), score its
match's kick-off as last seen. A page's upcoming tips are marked in the same transaction as the page's
XADD (`fetcher.streams.append`), so a tip counts as known only once the processor can read it. Entries
leave once their match kicked off more than the grace period ago: such a tip is never new again
(`fetcher.paging` counts only upcoming tips), so forgetting it changes no decision. A predictor no
longer polled loses its set after `RETENTION_SECONDS`; polling it again reads as deep as a first poll.
This module is the only reader and writer of these sets.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import redis
from redis.client import Pipeline

from shared.keys import Keys
from shared.redisconn import text

RETENTION_SECONDS = 30 * 86400


def read(conn: redis.Redis, keys: Keys, predictor_ids: Iterable[str], now: float,
         grace_minutes: float) -> Iterator[tuple[str, set[str]]]:
    """Each predictor's known upcoming tips (their keys); entries past their match are dropped.

    Redis is asked at once (its errors are raised here); the pairs are made as they are taken, so that
    the caller can let go of what it held a predictor at a time.
    """
    ids = list(predictor_ids)
    bound = now - grace_minutes * 60
    pipe = conn.pipeline(transaction=False)
    for pid in ids:
        pipe.zremrangebyscore(keys.seen_tips(pid), "-inf", bound)
        pipe.zrangebyscore(keys.seen_tips(pid), f"({bound!r}", "+inf")
    replies = pipe.execute()
    return ((pid, {text(m) for m in replies[2 * i + 1]}) for i, pid in enumerate(ids))


def mark(pipe: Pipeline, keys: Keys, predictor_id: str, tips: Mapping[str, float]) -> None:
    """Queue the marks of one page's upcoming tips (tip key -> kick-off) on the stream write's transaction."""
    if tips:
        key = keys.seen_tips(predictor_id)
        pipe.zadd(key, dict(tips))
        pipe.expire(key, RETENTION_SECONDS)
