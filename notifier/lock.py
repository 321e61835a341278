"""The per-webhook lock: alerts of one webhook go out one message at a time, oldest first,
whatever the number of notifier processes.

`SET key token NX PX ttl`, renewed by a thread while held, released by compare-and-delete
in Lua (`notifier/lua/renew.lua`, `release.lua`), so a process never deletes a lock that
expired and was taken by another. While its holder lingers as the webhook's drain
(`notifier.lingering`), the same renewal keeps the drain's registration alive. The token
starts with the owner name (`notifier:<instance id>`), so a lock left by a notifier that is gone
(`dead`: its heartbeat says so, wherever it ran) can be taken over before its TTL runs out.

While Redis is away the renewal tries again every second, and a lock that vanished meanwhile
(Redis restarted without its data, or the TTL ran out) and nobody took is taken again: the
holder may be waiting to record a message Discord accepted, and must keep others off its alerts.
"""
from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import redis

from notifier import scripts

log = logging.getLogger(__name__)

# While Redis does not answer, the renewal tries again this often.
RETRY_SECONDS = 1.0
# What renew.lua answers when it took a vanished lock again (1: renewed, 0: another holds it).
RETAKEN = 2


class WebhookLock:
    def __init__(self, conn: redis.Redis, key: str, owner: str, ttl: float,
                 on_error: Callable[[BaseException], None] | None = None,
                 dead: Callable[[str], bool] | None = None) -> None:
        self.conn = conn
        self.dead = dead  # whether an owner is gone (`NotifierContext.owner_dead`); None: never taken over
        self.on_error = on_error  # told about Redis errors while renewing (default: a log line each)
        self.key = key
        self.owner = owner
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.token = f"{owner}|{uuid.uuid4().hex}"
        self._release = scripts.load(conn, "release")
        self._renew = scripts.load(conn, "renew")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        self._seen: str | None = None  # the holder's token, as the last try_acquire found it
        # While the holder is registered as the webhook's drain: its stream and owner key, renewed with the lock.
        self._drain_keys: tuple[str, str] | None = None

    def try_acquire(self) -> bool:
        # One command: SET NX GET answers the holder's token when the lock is taken (Redis 7).
        seen = self.conn.set(self.key, self.token, nx=True, px=self.ttl_ms, get=True)
        if seen is None:
            self._seen = None
            self.lost = False
            self._start_renewing()
            return True
        self._seen = seen.decode() if isinstance(seen, bytes) else str(seen)
        return False

    def holder(self) -> str | None:
        raw = self.conn.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw

    def take_over_if_dead(self) -> str | None:
        """Delete the lock when its holder is gone (`dead`); returns that owner."""
        token, self._seen = self._seen or self.holder(), None
        if not token:
            return None
        owner = token.partition("|")[0]
        if owner == self.owner or self.dead is None or not self.dead(owner):
            return None
        if self._release(keys=[self.key], args=[token]):
            log.warning("took over lock %s from dead notifier %s", self.key, owner)
            return owner
        return None

    def keep_drain(self, keys: tuple[str, str] | None) -> None:
        """Renew these keys (the webhook's drain stream and owner key, `notifier.lingering`) with the lock while
        they hold this lock's token; None: no more."""
        self._drain_keys = keys

    def _start_renewing(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="webhook-lock", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = self.ttl_ms / 3000
        wait = interval
        while not self._stop.wait(wait):
            drain = self._drain_keys
            try:
                if drain is None:
                    renewed = self._renew(keys=[self.key], args=[self.token, self.ttl_ms])
                else:
                    renewed = self._renew(keys=[self.key, *drain], args=[self.token, self.ttl_ms, self.token])
            except redis.RedisError as error:
                if self.on_error is not None:
                    self.on_error(error)
                else:
                    log.warning("could not renew lock %s: %s", self.key, type(error).__name__)
                wait = min(interval, RETRY_SECONDS)
                continue
            wait = interval
            if not renewed:
                self.lost = True
                log.warning("lost lock %s", self.key)
                return
            if int(renewed) == RETAKEN:
                log.warning("lock %s had vanished (Redis lost it); taken again", self.key)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError as error:
            if self.on_error is not None:
                self.on_error(error)  # it expires by itself
            else:
                log.warning("could not release lock %s: %s (it expires by itself)", self.key, type(error).__name__)
