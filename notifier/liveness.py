"""Notifier liveness: this notifier's heartbeat, and whether another notifier (or RQ worker) still runs.

A notifier is named by its owner name (`shared.heartbeat.process_name("notifier")`, i.e.
`notifier:<host>:<pid>`) in its heartbeat, its outbox leases and its webhook locks. Only a
process on this host can be checked; for others the answer is "unknown" (False from
`owner_dead`), and leases and lock TTLs run out instead.
"""
from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING

from shared import heartbeat
from shared.webhooks import WEBHOOKS

if TYPE_CHECKING:
    from notifier.context import NotifierContext

ROLE = "notifier"


def owner_name() -> str:
    """This process's owner name, `notifier:<host>:<pid>`."""
    return heartbeat.process_name(ROLE)


def worker_name(owner: str) -> str:
    """The name of an RQ worker of this notifier, `notifier.<host>.<pid>.<random>` (unique per worker)."""
    return f"{owner.replace(':', '.')}.{uuid.uuid4().hex[:6]}"


def beat(ctx: NotifierContext) -> None:
    """Say this notifier is alive, with what it did so far (shown by `sofamon status`)."""
    heartbeat.beat(ctx.redis, ctx.keys, ctx.owner, pid=os.getpid(), queued=ctx.queue.count,
                   messages=ctx.stats.messages, alerts=ctx.stats.alerts, rate_limited=ctx.stats.rate_limited,
                   dry_run=[name for name in WEBHOOKS if ctx.webhook_url(name) is None])  # its own configuration


def forget(ctx: NotifierContext) -> None:
    """Remove this notifier's heartbeat on a clean stop."""
    heartbeat.clear(ctx.redis, ctx.keys, ctx.owner)


def pid_alive(pid: int) -> bool:
    """A process with this pid exists here and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def owner_dead(owner: str) -> bool:
    """True only when the owner ran on this host and its process is gone."""
    parsed = heartbeat.host_and_pid(owner)
    if parsed is None:
        return False
    host, pid = parsed
    return worker_dead(host, pid)


def worker_dead(host: str | None, pid: int | None) -> bool:
    """True only when the process ran on this host and is gone."""
    return bool(host) and host == socket.gethostname() and pid is not None and not pid_alive(pid)
