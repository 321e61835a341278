"""Is the notifier process behind an owner name (`notifier:<host>:<pid>`) still alive?

Only a process on this host can be checked; for others the answer is "unknown" (False
from `owner_dead`), and leases and lock TTLs run out instead.
"""
from __future__ import annotations

import os
import socket


def parse_owner(owner: str) -> tuple[str, int] | None:
    """(host, pid) of `role:host:pid`, None when it has another shape."""
    _, _, rest = owner.partition(":")
    host, _, pid = rest.rpartition(":")
    if not host or not pid.isdigit():
        return None
    return host, int(pid)


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
    parsed = parse_owner(owner)
    if parsed is None:
        return False
    host, pid = parsed
    return host == socket.gethostname() and not pid_alive(pid)


def worker_dead(host: str | None, pid: int | None) -> bool:
    return bool(host) and host == socket.gethostname() and pid is not None and not pid_alive(pid)
