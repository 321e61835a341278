"""The Discord rate limiter shared by every notifier process, kept in Redis.

Discord announces each webhook's bucket in response headers (`X-RateLimit-Limit`,
`-Remaining`, `-Reset-After`, `-Bucket`, read by `notifier.discord.parse_headers`); the
limiter learns them instead of hard-coding numbers and never lets a request go that it
knows would be refused:

* `reserve(webhook)` returns 0 and takes one slot (atomically, in Lua: `notifier/lua/`), or
  the seconds to wait. While a webhook's bucket is still unknown, one request at a time may
  go to learn it. `acquire(webhook, stop=...)` waits until `reserve` lets a request go.
* `update(webhook, headers)` after every response; or `answered(webhook, headers)`, learnt with the next
  reservation in the same script run (`flush` learns it at once).
* `block(webhook, seconds)` / `block(None, seconds, is_global=True)` after a 429.
* A rolling window of `messages_per_minute` per webhook (Discord limits a channel to about
  30 messages a minute and does not announce it).

Times are Unix seconds from the caller's clock (all notifier processes are expected to run
with synchronised clocks); tests pass `now` explicitly.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import redis

from notifier import scripts
from notifier.discord import RateLimitHeaders
from shared.keys import Keys
from shared.redisconn import decoded, text

WINDOW_SECONDS = 60.0
# The per-minute window is counted from when a request is reserved, the channel's from when
# Discord accepts it: a little margin keeps the two from disagreeing by a few milliseconds.
WINDOW_MARGIN = 1.0
# How long one request that learns an unknown bucket may hold the webhook (more than the HTTP timeout).
PROBE_SECONDS = 15.0
# While another process's probe is in flight, check again this often.
PROBE_POLL = 0.05
# What reserve.lua answers after taking the one request that may learn an unknown bucket.
PROBE = "probe"
# Responses whose reset time differs by less than this are from the same bucket window.
SAME_WINDOW = 0.5
STATE_TTL_MS = 24 * 3600 * 1000


class RateLimiter:
    """Reservations against Discord's limits, shared through Redis by every notifier process."""

    def __init__(self, conn: redis.Redis, keys: Keys, messages_per_minute: int, *,
                 window_seconds: float = WINDOW_SECONDS + WINDOW_MARGIN, probe_seconds: float = PROBE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.keys = keys
        self.messages_per_minute = messages_per_minute
        self.window_seconds = window_seconds
        self.probe_seconds = probe_seconds
        self.clock = clock
        self._reserve = scripts.load(conn, "reserve")
        self._cancel = scripts.load(conn, "cancel")
        self._block = scripts.load(conn, "block")
        self._last_member: dict[str, str] = {}
        # Per webhook: an answer not learnt yet (when it came, its headers), for the next reservation.
        self._pending: dict[str, tuple[float, RateLimitHeaders]] = {}
        self._probing: set[str] = set()  # webhooks whose last reservation was a probe (their bucket unknown)

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def _run(self, webhook: str, now: float, member: str) -> str:
        """reserve.lua: learn the answer pending for the webhook, if any, then take a slot (unless `member` is '')."""
        answer: list[object] = [""] * 6
        pending = self._pending.pop(webhook, None)
        self._probing.discard(webhook)  # an answer learnt ends the probe; a reservation says anew
        if pending is not None:
            answered_at, headers = pending
            answer = [repr(answered_at), "", "", "", "", repr(SAME_WINDOW)]
            if headers.complete:
                answer[1:5] = [headers.limit, headers.remaining, repr(headers.reset_after), headers.bucket or ""]
        return self._reserve(
            keys=[self.keys.bucket(webhook), self.keys.sent_window(webhook), self.keys.global_block],
            args=[repr(now), self.messages_per_minute, repr(self.window_seconds), repr(self.probe_seconds), member,
                  STATE_TTL_MS, repr(PROBE_POLL), *answer],
        )

    def reserve(self, webhook: str, now: float | None = None) -> float:
        """0 when a request may go now (one slot is taken), else the seconds to wait first.

        An answer left by `answered` is learnt first, in the same script run."""
        member = uuid.uuid4().hex
        answer = text(self._run(webhook, self._now(now), member))
        wait = 0.0 if answer == PROBE else float(answer)
        if wait <= 0:
            self._last_member[webhook] = member
            if answer == PROBE:
                self._probing.add(webhook)
            return 0.0
        return wait

    def cancel(self, webhook: str) -> None:
        """Give back the slot of the last reservation that was not used for a request."""
        member = self._last_member.pop(webhook, "")
        self._cancel(keys=[self.keys.bucket(webhook), self.keys.sent_window(webhook)], args=[member])

    def answered(self, webhook: str, headers: RateLimitHeaders, now: float | None = None) -> None:
        """Learn from an answer's headers with the next reservation for the webhook: one script run for both. Only
        for the holder of the webhook's lock, the only one reserving for it; `flush` before letting the lock go.
        The answer to a probe is learnt at once: until then nobody may send (should this process die first)."""
        probe = webhook in self._probing
        self.flush(webhook)
        self._last_member.pop(webhook, None)
        self._pending[webhook] = (self._now(now), headers)
        if probe:
            self.flush(webhook)

    def flush(self, webhook: str) -> None:
        """Learn the answer `answered` left for the webhook now, if any."""
        if webhook in self._pending:
            self._run(webhook, self.clock(), "")

    def update(self, webhook: str, headers: RateLimitHeaders, now: float | None = None) -> None:
        """Learn from a response's headers now (and end a probe, headers or not)."""
        self.answered(webhook, headers, now)
        self._run(webhook, self._now(now), "")

    def block(self, webhook: str | None, seconds: float, *, is_global: bool = False,
              now: float | None = None) -> None:
        """After a 429: nothing goes to `webhook` (every webhook when global) for `seconds`."""
        until = self._now(now) + max(0.0, seconds)
        ttl_ms = max(1, int(seconds * 1000) + 1000)
        if is_global or webhook is None:
            self._block(keys=[self.keys.global_block], args=[repr(until), "1", ttl_ms])
        else:
            self._block(keys=[self.keys.bucket(webhook)], args=[repr(until), "0", max(ttl_ms, STATE_TTL_MS)])

    def acquire(self, webhook: str, *, stop: threading.Event, max_sleep: float = 1.0) -> bool:
        """Wait until `reserve` lets a request go; False when `stop` was set meanwhile."""
        while True:
            wait = self.reserve(webhook)
            if wait <= 0:
                return True
            if stop.wait(min(wait, max_sleep)):
                return False

    def state(self, webhook: str) -> dict[str, str]:
        """What the limiter knows about a webhook (for tests and `status` displays)."""
        return decoded(self.conn.hgetall(self.keys.bucket(webhook)))
