"""Backing off: per predictor (404s, repeated failures) and for the whole upstream (challenges, 429s).

Pure rules: every method takes `now`; nothing here reads a clock or talks to Redis (fetcher/state.py
saves these states).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fetcher.client import ResultKind
from shared.timefmt import duration

PREDICTOR_PAUSE_SECONDS = 30 * 60.0
MAX_STRIKES = 3
BACKOFF_START_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 30 * 60.0
# The ladder comes down only after this long of answers without a challenge or 429 since the last wait:
# one good answer between two 429s proves nothing (else intermittent 429s would never let it double).
BACKOFF_QUIET_SECONDS = BACKOFF_MAX_SECONDS


# -- per predictor --------------------------------------------------------------------------------


@dataclass
class PredictorState:
    """Where one predictor stands: its strikes and pause (saved by fetcher/state.py)."""

    nickname: str | None = None
    last_fetch: float | None = None
    strikes: int = 0
    paused_until: float | None = None
    last_status: str | None = None

    def is_paused(self, now: float) -> bool:
        return self.paused_until is not None and now < self.paused_until


def record_result(state: PredictorState, kind: ResultKind, now: float) -> str | None:
    """Update a predictor after a request; returns what happened to it, for the log line (None if nothing).

    A challenge or 429 is the upstream's verdict on us, not on this predictor: no strike.
    """
    state.last_status = kind
    if kind == "ok":
        state.last_fetch = now
        state.strikes = 0
        state.paused_until = None
        return None
    if kind in ("challenge", "rate_limited"):
        return None
    if kind == "not_found":
        # The user is gone or private: asking every few minutes would only look suspicious.
        state.strikes = 0
        state.paused_until = now + PREDICTOR_PAUSE_SECONDS
        return f"predictor paused {PREDICTOR_PAUSE_SECONDS / 60:.0f} min"
    state.strikes += 1
    if state.strikes >= MAX_STRIKES:
        # Three failures in a row: paused for the same 30 min as a 404; the strikes restart after the pause.
        state.strikes = 0
        state.paused_until = now + PREDICTOR_PAUSE_SECONDS
        return f"{MAX_STRIKES} failures in a row; predictor paused {PREDICTOR_PAUSE_SECONDS / 60:.0f} min"
    return f"failure {state.strikes}/{MAX_STRIKES}"


# -- upstream -------------------------------------------------------------------------------------

TransitionKind = Literal["blocked_started", "blocked_ended"]


@dataclass(frozen=True)
class Transition:
    """The global backoff started or ended (emitted once each, not on every doubling)."""

    kind: TransitionKind
    at: float
    until: float
    message: str


@dataclass
class UpstreamBackoff:
    """Stops every request after a challenge or 429.

    `seconds` is the doubling ladder (60 s, 120 s, ... 30 min); `until` may be later when Retry-After says so.
    Requests resume when `until` passes, but the block (and its ladder) ends only with a good answer
    BACKOFF_QUIET_SECONDS after `until` with no challenge or 429 in between: until then each new challenge
    counts as consecutive and doubles the ladder, however many good answers came between.
    """

    until: float | None = None
    seconds: float = 0.0
    blocked_since: float | None = None
    reason: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        """Blocked and not yet proven to be over (requests may be allowed again once `until` passed)."""
        return self.blocked_since is not None

    def is_blocked(self, now: float) -> bool:
        """Whether requests must wait."""
        return self.until is not None and now < self.until

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now) if self.until is not None else 0.0

    def on_block(self, now: float, retry_after: float | None = None, reason: str = "") -> Transition | None:
        """A challenge or 429 arrived; returns the `blocked_started` transition the first time only."""
        if self.is_blocked(now):
            # Another answer to a request that was already in flight: the same block, not a new one.
            if retry_after is not None and self.until is not None:
                self.until = max(self.until, now + retry_after)
            return None
        first = self.blocked_since is None
        # (max: a saved ladder that was garbled to 0 still doubles from the start)
        self.seconds = BACKOFF_START_SECONDS if first else \
            min(max(self.seconds * 2, BACKOFF_START_SECONDS), BACKOFF_MAX_SECONDS)
        wait = max(self.seconds, retry_after or 0.0)
        self.until = now + wait
        self.reason = reason
        if not first:
            return None
        self.blocked_since = now
        what = f" ({reason})" if reason else ""
        return Transition(
            "blocked_started", now, self.until,
            f"Sofascore is blocking requests{what}; all requests paused for {duration(wait)}.",
        )

    def on_success(self, now: float) -> Transition | None:
        """A request succeeded; ends a block quiet for BACKOFF_QUIET_SECONDS (returns `blocked_ended` once)."""
        if self.blocked_since is None or self.is_blocked(now):
            # Still inside the wait: this answer was in flight before the block began.
            return None
        quiet_since = self.until if self.until is not None else self.blocked_since
        if now - quiet_since < BACKOFF_QUIET_SECONDS:
            return None  # requests go on; the next challenge doubles the ladder
        since = self.blocked_since
        self.until, self.seconds, self.blocked_since, self.reason = None, 0.0, None, ""
        return Transition(
            "blocked_ended", now, now,
            f"Sofascore answers again: no challenge or 429 for {duration(now - quiet_since)}"
            f" (blocking began {duration(now - since)} ago).",
        )
