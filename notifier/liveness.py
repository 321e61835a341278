"""Notifier liveness: this notifier's heartbeat, and whether another notifier (or its RQ worker) still runs.

A notifier is named by its owner name (`shared.instance.process_name("notifier")`, i.e.
`notifier:<instance id>`) in its heartbeat, its outbox leases, its webhook locks and its retry scheduler's
lock; its RQ workers are named `notifier.<instance id>.<random>` (`worker_name`), which leads back to the
owner (`owner_of_worker`). Whether an owner is gone is its heartbeat's word (`shared.heartbeat.dead`),
wherever it ran.
"""
from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

import redis

from shared import heartbeat, instance
from shared.keys import Keys
from shared.webhooks import WEBHOOKS

if TYPE_CHECKING:
    from notifier.context import NotifierContext

ROLE = "notifier"
# `notifier.<instance id>.<random>`; older notifiers named theirs `notifier.<host>.<pid>.<random>`.
_WORKER = re.compile(rf"^{ROLE}\.([^.]+)\.[0-9a-f]+$")


def owner_name() -> str:
    """This process's owner name, `notifier:<instance id>`."""
    return instance.process_name(ROLE)


def worker_name(owner: str) -> str:
    """The name of an RQ worker of this notifier, `notifier.<instance id>.<random>` (unique per worker)."""
    return f"{owner.replace(':', '.')}.{secrets.token_hex(3)}"


def owner_of_worker(worker: str | None) -> str | None:
    """The notifier an RQ worker belongs to; None for a worker of another kind (an older notifier, `rq worker`)."""
    match = _WORKER.match(worker or "")
    return f"{ROLE}:{match[1]}" if match else None


def beat(ctx: NotifierContext) -> None:
    """Say this notifier is alive, with what it did so far (shown by `sofamon status`)."""
    heartbeat.beat(ctx.redis, ctx.keys, ctx.owner, **info(ctx), timeout=ctx.config.timing.timeout, mode=ctx.mode)


def info(ctx: NotifierContext) -> dict[str, object]:
    return {"queued": ctx.queue.count, "messages": ctx.stats.messages, "alerts": ctx.stats.alerts,
            "rate_limited": ctx.stats.rate_limited,
            "dry_run": [name for name in WEBHOOKS if ctx.webhook_url(name) is None]}  # its own configuration


def beater(ctx: NotifierContext) -> heartbeat.Beater:
    """This notifier's heartbeat, beaten from a thread of its own."""
    return heartbeat.Beater(ctx.redis, ctx.keys, ctx.owner, ctx.config.timing, info=lambda: info(ctx), mode=ctx.mode,
                            on_error=ctx.redis_outage.failed)


def forget(ctx: NotifierContext) -> None:
    """Remove this notifier's heartbeat on a clean stop."""
    heartbeat.clear(ctx.redis, ctx.keys, ctx.owner)


def owner_dead(conn: redis.Redis, keys: Keys, owner: str, timing: heartbeat.Timing) -> bool:
    """True when the notifier `owner` is gone: its heartbeat says so (cleared, timed out, or its process ended
    on this machine)."""
    return heartbeat.dead(conn, keys, owner, timing)
