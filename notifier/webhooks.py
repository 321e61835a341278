"""Webhook health: the "broken" marks and "failing" records the notifier keeps in Redis, read and written
only here.

When Discord itself says a webhook was deleted or its token is wrong (401/404, or its codes for an
unknown webhook or an invalid token), the notifier marks it broken with the fingerprint of its URL
and sends nothing more to it. The mark holds for that very URL only: once the configuration names
another URL, the mark is cleared and delivery resumes. `broken_webhooks` reads the marks for
`sofamon status` (no notifier context needed).

Failed attempts that are not such a verdict (5xx, timeouts, a Cloudflare page) only make a webhook
"failing" until its next delivery: `failing_webhooks` says since when, how many attempts and the last
error, for `sofamon status`.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis

from shared.keys import Keys
from shared.redisconn import text
from shared.webhooks import WEBHOOKS

log = logging.getLogger(__name__)


def fingerprint(url: str) -> str:
    """Identifies a webhook URL without revealing it: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def read(conn: redis.Redis, keys: Keys, webhook: str) -> str | None:
    """The fingerprint of the URL the webhook was marked broken for; None when it is not marked."""
    raw = conn.get(keys.webhook_broken(webhook))
    return None if raw is None else text(raw)


def mark(conn: redis.Redis, keys: Keys, webhook: str, url: str) -> str:
    """Mark the webhook broken for this URL; returns the URL's fingerprint."""
    marked = fingerprint(url)
    conn.set(keys.webhook_broken(webhook), marked)
    return marked


def clear(conn: redis.Redis, keys: Keys, webhook: str, marked: str) -> None:
    """Forget the mark left for another URL (fingerprint `marked`) than the one configured now."""
    log.warning("webhook %s: URL changed since it was marked broken (%s): delivering again", webhook, marked)
    conn.delete(keys.webhook_broken(webhook))


def is_broken(conn: redis.Redis, keys: Keys, webhook: str, url: str) -> bool:
    """Marked broken for this very URL; a mark left for another URL (the configuration changed) is cleared."""
    marked = read(conn, keys, webhook)
    if marked is None:
        return False
    if marked == fingerprint(url):
        return True
    clear(conn, keys, webhook, marked)
    return False


def broken_webhooks(conn: redis.Redis, keys: Keys) -> dict[str, str]:
    """Webhook name -> fingerprint of the URL marked broken, for every marked webhook (reads only)."""
    found = {}
    for webhook in WEBHOOKS:
        marked = read(conn, keys, webhook)
        if marked is not None:
            found[webhook] = marked
    return found


# A failing record nobody updates any more (no notifier running) is dropped after this long.
FAILING_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class Failing:
    """Failed delivery attempts to a webhook since its last delivery."""

    attempts: int
    since: float  # Unix time of the first of them
    last_at: float
    last_status: int | None  # None: no answer (timeout, connection error)
    last_error: str


def record_failure(conn: redis.Redis, keys: Keys, webhook: str, status: int | None, error: str,
                   now: float | None = None) -> None:
    """One more failed attempt (not Discord's verdict on the webhook): it is failing, not broken."""
    at = repr(time.time() if now is None else now)
    key = keys.webhook_failing(webhook)
    with conn.pipeline() as pipe:
        pipe.hsetnx(key, "since", at)
        pipe.hincrby(key, "attempts", 1)
        pipe.hset(key, mapping={"last_at": at, "last_status": "" if status is None else str(status),
                                "last_error": error})
        pipe.expire(key, FAILING_TTL)
        pipe.execute()


def record_success(conn: redis.Redis, keys: Keys, webhook: str) -> None:
    """Delivered: the webhook is no longer failing."""
    conn.delete(keys.webhook_failing(webhook))


def failing_webhooks(conn: redis.Redis, keys: Keys) -> dict[str, Failing]:
    """Webhook name -> its failed attempts since its last delivery, for every failing webhook (reads only)."""
    found = {}
    for webhook in WEBHOOKS:
        raw = {text(k): text(v) for k, v in conn.hgetall(keys.webhook_failing(webhook)).items()}
        if not raw:
            continue
        try:
            found[webhook] = Failing(attempts=int(raw.get("attempts", "0")), since=float(raw["since"]),
                                     last_at=float(raw["last_at"]),
                                     last_status=int(raw["last_status"]) if raw.get("last_status") else None,
                                     last_error=raw.get("last_error", ""))
        except (KeyError, ValueError):
            log.debug("unreadable failing record of webhook %s", webhook)
    return found
