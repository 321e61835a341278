"""Who this process is: an instance id unique across machines and restarts.

Every process (fetcher, processor, notifier and its RQ workers, one-off runs) draws a random id when it
starts (`instance_id`) and is named `<role>:<id>` (`process_name`) in its heartbeat, in the processor's
consumer name (the id), in the notifier's leases and locks (its owner name) and RQ worker names. Two
machines that share a hostname (cloned VMs, containers) or a process restarted with the same pid never
share a name. The hostname is kept for display only (`hostname`, written in the heartbeat).

Whether another process still runs is judged by its heartbeat in Redis (shared/heartbeat.py). One
shortcut keeps a crash on this machine noticed at once: a heartbeat says where it was written
(`machine`: the kernel's boot id and the pid namespace, which cloned VMs and containers do not share)
and which process wrote it (pid and its start time). Only when that place is provably this one does
`running_here` look at the pid; elsewhere the answer is "cannot tell" and the heartbeat's age decides.
"""
from __future__ import annotations

import os
import secrets
import socket
from functools import cache
from typing import Any

ID_BYTES = 6  # 12 hex digits: 48 random bits, drawn at every start
_drawn: tuple[int, str] | None = None  # (pid, id): a forked child draws its own


def instance_id() -> str:
    """This process's id: random, drawn once per start (again in a forked child)."""
    global _drawn
    pid = os.getpid()
    if _drawn is None or _drawn[0] != pid:
        _drawn = (pid, secrets.token_hex(ID_BYTES))
    return _drawn[1]


def process_name(role: str) -> str:
    """`<role>:<instance id>`: this process in heartbeats (and, for a notifier, in its leases and locks)."""
    return f"{role}:{instance_id()}"


def role_of(name: str) -> str:
    return name.split(":", 1)[0]


def hostname() -> str:
    """For display only: two machines may share it."""
    return socket.gethostname()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read().strip()
    except OSError:
        return None


def _own_proc() -> bool:
    """The /proc mounted here shows this process under its own pid: pids read there are those of our namespace
    (not so after `unshare --pid` without a fresh /proc)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


@cache
def _machine_of(pid: int) -> str | None:
    boot = _read("/proc/sys/kernel/random/boot_id")
    if not boot or not _own_proc():
        return None
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # `pid:[4026531836]`
    except OSError:
        return None
    return f"{boot}/{namespace.removeprefix('pid:').strip('[]')}"


def machine() -> str | None:
    """Where this process runs, as far as pids go: the boot id and the pid namespace; None when unknown."""
    return _machine_of(os.getpid())


def started(pid: int) -> int | None:
    """When the process `pid` started (clock ticks since boot, /proc/<pid>/stat): tells a reused pid apart."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        if fields[0] in ("Z", "X"):
            return None  # a zombie has ended
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@cache
def _own_start(pid: int) -> int | None:
    return started(pid)


def identity() -> dict[str, Any]:
    """What a heartbeat says about its writer: host (display), pid, machine and start time (`running_here`)."""
    pid = os.getpid()
    return {"instance": instance_id(), "host": hostname(), "pid": pid, "machine": machine(), "started": _own_start(pid)}


def running_here(body: dict[str, Any]) -> bool | None:
    """Whether the process that wrote a heartbeat still runs, when it ran on this very machine and pid namespace;
    None when it ran elsewhere (or did not say where): then only its heartbeat can tell."""
    here = machine()
    pid, since = body.get("pid"), body.get("started")
    if here is None or body.get("machine") != here or not isinstance(pid, int) or not isinstance(since, int):
        return None
    return started(pid) == since
