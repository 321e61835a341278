"""Heartbeats: each process says it is alive, so `sofamon status` can tell who is not, and so the others can
take over what a gone process held (a notifier's locks, claimed alerts and started jobs, a processor's
pending stream entries).

A heartbeat is named by its process (`shared.instance.process_name`, `<role>:<instance id>`) and says who
wrote it (host, pid, machine), when, and its `timeout`. Liveness (`dead`) is judged by the heartbeat alone,
never by a pid on a machine that may be another: a process is gone once its heartbeat was cleared (a clean
stop) or is older than its timeout, measured by Redis's clock (the key's remaining TTL), so clocks that
differ between machines do not matter. A heartbeat written on this very machine and pid namespace also
tells at once that its process ended (`instance.running_here`): a crash here is noticed without waiting.

Timings (`Timing.of`), all from NOTIFIER_LEASE_SECONDS (L, 60 s by default): a heartbeat times out after
L/2 (at least `MIN_TIMEOUT`), is beaten three times per timeout (or every NOTIFIER_HEARTBEAT_SECONDS when that
is shorter), from a thread of its own (`Beater`) whatever the process waits for; the others look for gone
processes every L/4. So what a process on a machine that died held is handed over within about 3/4 L.
The key outlives the timeout by `KEEP_SECONDS`, so `status` can still say when a gone process was last seen.

Right after Redis came back without its data every heartbeat is missing: a missing heartbeat counts as
gone only once Redis has run for a whole timeout (every live process has beaten again by then).

One-off runs (`fetch --once`, `process --burst`, `notify --burst`) beat too, marked with their `mode`: status
shows them, but they are no live fetcher, processor or notifier (one that just ended says nothing about the
service).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from shared import instance
from shared.keys import Keys
from shared.redisconn import text, unavailable

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger(__name__)

ONCE, BURST = "once", "burst"  # the `mode` of one-off runs' heartbeats
KEEP_SECONDS = 300.0  # a heartbeat's key outlives its timeout this long: status shows when a gone process was seen
MIN_TIMEOUT = 3.0  # a beat delayed by a busy machine must not look like a death
MIN_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Timing:
    timeout: float  # a process whose heartbeat is older than this is gone
    every: float  # it beats this often
    check_every: float  # others look for gone processes this often (sweeper, processor's orphan claims)

    @classmethod
    def of(cls, settings: Settings) -> Timing:
        lease = settings.notifier_lease_seconds
        timeout = max(lease / 2, MIN_TIMEOUT)
        return cls(timeout=timeout, every=min(timeout / 3, settings.notifier_heartbeat_seconds),
                   check_every=max(lease / 4, MIN_CHECK_SECONDS))


def beat(conn: redis.Redis, keys: Keys, name: str, *, timeout: float, mode: str | None = None, **info: Any) -> None:
    """Say `name` (this process) is alive for `timeout` seconds, with `info` for status; `mode` ONCE or BURST for
    a one-off run."""
    ttl = int(timeout + KEEP_SECONDS)
    body = {"name": name, "role": instance.role_of(name), **instance.identity(), "at": time.time(),
            "timeout": timeout, "ttl": ttl, **({"mode": mode} if mode else {}), **info}
    conn.set(keys.heartbeat(name), json.dumps(body), ex=ttl)


def long_running(body: dict[str, Any]) -> bool:
    """Whether a heartbeat is that of a long-running process, not of a one-off run."""
    return body.get("mode") not in (ONCE, BURST)


def clear(conn: redis.Redis, keys: Keys, name: str) -> None:
    """A clean stop: from now on the process counts as gone."""
    conn.delete(keys.heartbeat(name))


def _age(body: dict[str, Any], pttl: int) -> float | None:
    """Seconds since the beat, by Redis's clock (the key was set with `ttl` seconds to live)."""
    ttl = body.get("ttl")
    if not isinstance(ttl, (int, float)) or pttl < 0:
        return None
    return max(0.0, ttl - pttl / 1000)


def _parse(raw: Any) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _redis_just_started(conn: redis.Redis, seconds: float) -> bool:
    """Redis has run for less than `seconds`: heartbeats missing now may be data it lost, not processes gone."""
    try:
        uptime = conn.info("server").get("uptime_in_seconds")
    except redis.ResponseError:
        return False  # INFO refused (a managed Redis): no such guard
    return isinstance(uptime, int) and uptime < seconds


def dead(conn: redis.Redis, keys: Keys, name: str, timing: Timing) -> bool:
    """Whether the process `name` is gone: its heartbeat cleared, or older than its timeout by Redis's clock, or
    written on this machine by a process that ended. A live process elsewhere with the same hostname and a pid
    that means nothing here is not gone."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.get(keys.heartbeat(name))
        pipe.pttl(keys.heartbeat(name))
        raw, pttl = pipe.execute()
    if raw is None:
        return not _redis_just_started(conn, timing.timeout)
    body = _parse(raw)
    if body is None:
        return False  # unreadable: it counts until its key expires
    age, timeout = _age(body, int(pttl)), body.get("timeout")
    if age is not None and isinstance(timeout, (int, float)) and age > timeout:
        return True
    return instance.running_here(body) is False


def read_all(conn: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Every heartbeat still in Redis, by name, each with its `age` by Redis's clock when it tells; an unreadable
    one is listed with `at` None, never fatal."""
    found = []
    marker = keys.heartbeat("")
    names = list(conn.scan_iter(match=keys.heartbeats, count=500))
    with conn.pipeline(transaction=False) as pipe:
        for key in names:
            pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
    for key, raw, pttl in zip(names, replies[::2], replies[1::2], strict=True):
        if raw is None:
            continue  # expired between SCAN and GET
        body = _parse(raw) or {"at": None}
        body.setdefault("name", text(key).removeprefix(marker))
        age = _age(body, int(pttl))
        if age is not None:
            body["age"] = round(age, 1)
        found.append(body)
    return sorted(found, key=lambda b: str(b.get("name")))


class Beater:
    """Beats one process's heartbeat from a thread of its own, every `timing.every` seconds, whatever the
    process's main loop waits for (a long job, a sleep, a slow database). `info` adds what status shows.
    Redis away is told to `on_error` (the process's outage line) and the next beat tries again; `on_beat`
    hears of each beat Redis took."""

    def __init__(self, conn: redis.Redis, keys: Keys, name: str, timing: Timing, *,
                 info: Callable[[], dict[str, Any]] = dict, mode: str | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.conn = conn
        self.keys = keys
        self.name = name
        self.timing = timing
        self.info = info
        self.mode = mode
        self.on_error = on_error
        self.on_beat: Callable[[], None] | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """One beat now (raises what Redis raises)."""
        beat(self.conn, self.keys, self.name, timeout=self.timing.timeout, mode=self.mode, **self.info())

    def beat_quietly(self) -> None:
        """One beat now; a failure is told (Redis away: to `on_error`), never raised."""
        try:
            self.beat()
            if self.on_beat is not None:
                self.on_beat()
        except Exception as error:  # noqa: BLE001 - the thread must survive anything
            if not unavailable(error):
                log.warning("heartbeat of %s failed: %s: %s", self.name, type(error).__name__, str(error)[:200])
            elif self.on_error is not None:
                self.on_error(error)  # Redis away: the process's own outage line says so

    def start(self) -> Beater:
        """Beat now, then every `timing.every` seconds until `stop`."""
        self.beat_quietly()
        self._done.clear()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(self.timing.every):
            self.beat_quietly()

    def stop(self, *, clear_it: bool = True) -> None:
        """Stop beating; `clear_it`: remove the heartbeat (a clean stop: the others see it gone at once)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if clear_it:
            try:
                clear(self.conn, self.keys, self.name)
            except redis.RedisError:
                pass  # it times out by itself
