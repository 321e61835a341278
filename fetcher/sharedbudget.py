"""The request budget of fetchers sharing the work, in Redis: the only reader and writer of its key.

UPSTREAM_MAX_REQUESTS_PER_MINUTE holds for all the fetchers of one scope together (UPSTREAM_BUDGET_SCOPE:
`global`, every fetcher, for hosts behind one address; `host`, those on one machine, for hosts with their own).
A batch takes its slots in one script call (fetcher/lua/budget_take.lua) before its requests start, so two
fetchers never both take the last ones; once the batch is done its slots are stamped with the time it
finished, as `fetcher.budget` does for one fetcher, so any 60 s of request starts holds at most the limit.
"""
from __future__ import annotations

import itertools
import uuid

import redis

from fetcher.budget import WINDOW_SECONDS
from shared import scripts


class SharedBudget:
    def __init__(self, conn: redis.Redis, key: str, per_minute: int) -> None:
        self.conn = conn
        self.key = key
        self.per_minute = per_minute
        self._take = conn.register_script(scripts.source("fetcher", "budget_take"))
        self._prefix = uuid.uuid4().hex[:12]
        self._takes = itertools.count()

    def take(self, wanted: int, now: float) -> tuple[list[str], float]:
        """Slots for up to `wanted` requests starting now (their tokens); with none, how long to wait."""
        prefix = f"{self._prefix}:{next(self._takes)}:"
        granted, oldest = self._take(keys=[self.key], args=[repr(now), WINDOW_SECONDS, self.per_minute, wanted,
                                                            prefix])
        tokens = [f"{prefix}{i}" for i in range(1, int(granted) + 1)]
        wait = 0.0 if tokens or not oldest else max(float(oldest) + WINDOW_SECONDS - now, 0.0)
        return tokens, wait

    def finished(self, tokens: list[str], at: float) -> None:
        """The batch of these slots is done: they count from `at`."""
        if tokens:
            self.conn.zadd(self.key, dict.fromkeys(tokens, at), xx=True)
