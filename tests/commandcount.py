"""Redis commands one database receives, by client and command, counted while it runs (benchmarks, tests).

Why MONITOR and not `INFO commandstats`: commandstats counts the whole server, and the test and benchmark
Redis is shared with other databases (other checkouts, other sessions). MONITOR names the database and the
client of each command, including the commands Lua scripts run (`[11 lua] "hset" ...`, which follow the
EVAL/EVALSHA that ran them), so counting our database's lines gives what commandstats would count on a
server of our own, and says which process sent what.
"""
from __future__ import annotations

import os
import re
import threading
import uuid
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

# `1795385666.107189 [11 lua] "set" "x" "1"` / `... [11 127.0.0.1:42994] "eval" ...`
_LINE = re.compile(r'^\d+\.\d+ \[(\d+) ([^\]]*)\] "([^"]+)"')
# Connection set-up, not the traffic being measured.
_IGNORED = frozenset({"SELECT", "CLIENT", "HELLO", "AUTH"})
LUA = "lua"


def parse(line: str) -> tuple[int, str, str] | None:
    """(database, client address or "lua", command in upper case) of one MONITOR line; None for others."""
    match = _LINE.match(line)
    return (int(match[1]), match[2], match[3].upper()) if match else None


class CommandCounter:
    """Counts the commands run on `url`'s database between start() and stop() (a context manager)."""

    def __init__(self, url: str) -> None:
        self.conn = redis.Redis.from_url(url)
        self.db = int(self.conn.connection_pool.connection_kwargs.get("db", 0))
        # (client address, command): a script's own commands are counted for the client that ran it.
        self.by_client: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._done = threading.Event()
        self._marker = f"commandcount-end-{uuid.uuid4().hex}"
        self._seen_marker = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-counter", daemon=True)
        self._monitor: redis.client.Monitor | None = None

    def _run(self) -> None:
        caller = "?"
        with self.conn.monitor() as monitor:
            self._monitor = monitor
            self._ready.set()
            while not self._done.is_set():
                try:
                    raw = monitor.connection.read_response()
                except (redis.ConnectionError, OSError, ValueError):
                    return  # stop() closed the connection
                text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                if self._marker in text:
                    self._seen_marker.set()
                    continue
                parsed = parse(text)
                if parsed is None or parsed[0] != self.db or parsed[2] in _IGNORED:
                    continue
                _, client, command = parsed
                if client != LUA:
                    caller = client
                with self._lock:
                    self.by_client[(caller, command)] += 1

    def start(self) -> Self:
        self._thread.start()
        self._ready.wait(10)
        return self

    @property
    def counts(self) -> Counter[str]:
        """Commands so far, by command."""
        with self._lock:
            found: Counter[str] = Counter()
            for (_, command), n in self.by_client.items():
                found[command] += n
            return found

    def stop(self) -> Counter[str]:
        """Stop counting, once a marker sent now came through: every command sent before it is counted."""
        self.conn.echo(self._marker)
        self._seen_marker.wait(10)
        self._done.set()
        if self._monitor is not None:
            try:
                self._monitor.connection.disconnect()
            except (redis.RedisError, OSError):
                pass
        self._thread.join(5)
        self.conn.close()
        return self.counts

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done.is_set():
            self.stop()


def client_ports(pid: int) -> set[int]:
    """Local TCP ports of a process's sockets (Linux /proc): what MONITOR shows as its client address."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
