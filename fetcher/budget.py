"""The request budget: at most UPSTREAM_MAX_REQUESTS_PER_MINUTE requests to Sofascore in any 60 seconds,
and which requests go first when a cycle has more than that (a rule, no I/O; the clock is passed in).

A cycle asks for its requests in batches: `allowance` says how many may start now; the batch is
`spend`t with the time it *finished*, which is no earlier than any of its requests started, so any
60-second window of real request starts holds at most the limit. A cycle with more requests than the
allowance waits `wait_seconds` and goes on: it is spread, not cut, so nothing is skipped, only later.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

WINDOW_SECONDS = 60.0


@dataclass
class RequestBudget:
    """A sliding 60-second window of the requests made; `per_minute` 0 = no limit."""

    per_minute: int
    _spent: deque[float] = field(default_factory=deque)

    @property
    def limited(self) -> bool:
        return self.per_minute > 0

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0] <= now - WINDOW_SECONDS:
            self._spent.popleft()

    def allowance(self, now: float) -> int:
        """Requests that may start now (a large number when there is no limit)."""
        if not self.limited:
            return 1 << 30
        self._expire(now)
        return max(self.per_minute - len(self._spent), 0)

    def wait_seconds(self, now: float) -> float:
        """How long until at least one request may start again (0 when one may start now)."""
        if self.allowance(now) > 0:
            return 0.0
        return max(self._spent[0] + WINDOW_SECONDS - now, 0.0)

    def spend(self, count: int, finished_at: float) -> None:
        if self.limited and count > 0:
            self._spent.extend([finished_at] * count)

    def spread_minutes(self, requests: int, now: float) -> float:
        """Roughly how long `requests` more take under the limit, for the log line."""
        beyond = requests - self.allowance(now)
        if not self.limited or beyond <= 0:
            return 0.0
        return math.ceil(beyond / self.per_minute) * WINDOW_SECONDS / 60


class Prioritized(Protocol):
    """What `by_priority` needs to know of a request."""

    kind: str
    kickoff: float | None
    last_fetch: float | None


J = TypeVar("J", bound=Prioritized)


def by_priority(jobs: Sequence[J], now: float, near_within: float) -> list[J]:
    """Most urgent first, so a spread cycle makes its most useful requests before the budget makes it wait:
    odds of events within `near_within` seconds of kick-off (nearest first: their prices move and the closing
    price is there), then predictions (the predictor not polled for longest first: a new tip is the alert
    users wait for), then the other odds (nearest kick-off first). Ties keep their order."""

    def key(job: J) -> tuple[int, float]:
        if job.kind == "predictions":
            return 1, job.last_fetch if job.last_fetch is not None else -math.inf
        kickoff = job.kickoff if job.kickoff is not None else math.inf
        if job.kind == "odds" and kickoff - now > near_within:
            return 2, kickoff
        return 0, kickoff

    return sorted(jobs, key=key)
