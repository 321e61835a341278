"""Heartbeats: each process says it is alive, so `sofamon status` can tell who is not.

One-off runs (`fetch --once`, `process --burst`) beat too, marked with their `mode`: status shows them,
but they are no live fetcher or processor (one that just ended says nothing about the service).
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import redis

from shared.keys import Keys
from shared.redisconn import text

HEARTBEAT_TTL = 300
ONCE, BURST = "once", "burst"  # the `mode` of one-off runs' heartbeats


def process_name(role: str) -> str:
    """`role:host:pid`: this process in heartbeats (and, for a notifier, in its leases and locks)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}"


def host_and_pid(name: str) -> tuple[str, int] | None:
    """(host, pid) of a `process_name`; None when the name has another shape."""
    _, _, rest = name.partition(":")
    host, _, pid = rest.rpartition(":")
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


def beat(conn: redis.Redis, keys: Keys, name: str, *, mode: str | None = None, **info: Any) -> None:
    """Say `name` is alive, with `info` for status; `mode` ONCE or BURST for a one-off run."""
    body = {"name": name, "at": time.time(), **({"mode": mode} if mode else {}), **info}
    conn.set(keys.heartbeat(name), json.dumps(body), ex=HEARTBEAT_TTL)


def long_running(body: dict[str, Any]) -> bool:
    """Whether a heartbeat is that of a long-running process, not of a one-off run."""
    return body.get("mode") not in (ONCE, BURST)


def clear(conn: redis.Redis, keys: Keys, name: str) -> None:
    conn.delete(keys.heartbeat(name))


def read_all(conn: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every heartbeat still in Redis, by name; an unreadable one is listed with `at` None, never fatal."""
    found = []
    marker = keys.heartbeat("")
    for key in conn.scan_iter(match=keys.heartbeats, count=500):
        raw = conn.get(key)
        if raw is None:
            continue  # expired between SCAN and GET
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"at": None}
        body.setdefault("name", text(key).removeprefix(marker))
        found.append(body)
    return sorted(found, key=lambda b: str(b.get("name")))
