"""Writing to the `fetched` stream: every payload as received, plus health notes for the processor."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis
from redis.client import Pipeline

from shared.keys import Keys
from shared.models import FetchRecord
from shared.redisconn import text

HEALTH_BLOCKED = "upstream_blocked"
HEALTH_RECOVERED = "upstream_recovered"


def min_id(retention_days: float, wall_now: float) -> str:
    """The oldest stream id to keep: trimming is by age, so replay always has `retention_days` of history."""
    return str(int((wall_now - retention_days * 86400) * 1000))


def append(
    conn: redis.Redis,
    keys: Keys,
    record: FetchRecord,
    retention_days: float,
    *,
    wall_clock: Callable[[], float] = time.time,
    also: Callable[[Pipeline], None] | None = None,
) -> str:
    """XADD one record; returns its stream id. `also` queues commands that take effect only with the XADD
    (one transaction): the fetcher marks a page's tips as seen only once the page is in the stream.

    Trimmed against the wall clock, not an injected one: Redis stamps entry ids with its own clock.
    """
    pipe = conn.pipeline(transaction=also is not None)
    pipe.xadd(
        keys.fetched,
        record.to_fields(),  # type: ignore[arg-type]
        minid=min_id(retention_days, wall_clock()),
        approximate=True,
    )
    if also is not None:
        also(pipe)
    return text(pipe.execute()[0])


def health_record(subject: str, message: str, until: float, fetched_at: float) -> FetchRecord:
    payload = json.dumps({"message": message, "until": until})
    return FetchRecord(kind="health", subject=subject, fetched_at=fetched_at, payload=payload)
