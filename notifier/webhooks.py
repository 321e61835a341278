"""Webhook health: the "broken" marks the notifier keeps in Redis, read and written only here.

When Discord answers 401/403/404 a webhook was deleted or its token is wrong: the notifier marks
it broken with the fingerprint of its URL and sends nothing more to it. The mark holds for that
very URL only: once the configuration names another URL, the mark is cleared and delivery
resumes. `broken_webhooks` reads the marks for `sofamon status` (no notifier context needed).
"""
from __future__ import annotations

import hashlib
import logging

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
