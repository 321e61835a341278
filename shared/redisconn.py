"""Redis connections with timeouts, so a vanished Redis gives an error instead of a hang; through Sentinel when
REDIS_URL is a redis+sentinel:// URL."""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import SSLConnection
from redis.retry import Retry
from redis.sentinel import (MasterNotFoundError, Sentinel, SentinelConnectionPool, SentinelConnectionPoolProxy,
                            SentinelManagedConnection)

from shared import sentinelurl
from shared.settings import Settings

log = logging.getLogger(__name__)

# Errors after which a process logs one line, waits and tries again: Redis is away (connection errors,
# timeouts), still loading its data (LOADING), or answers but refuses writes for now (OOM: out of memory,
# READONLY: it is a replica at the moment).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError,
                                                 redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
# Refusals redis-py raises as a plain ResponseError: a failed save stops writes (MISCONF), a blocked command
# was cut short when the server changed role (UNBLOCKED), a replica lost its master (MASTERDOWN), TRYAGAIN.
_REFUSAL_PREFIXES = ("MISCONF", "UNBLOCKED", "MASTERDOWN", "TRYAGAIN", "LOADING", "READONLY", "OOM")


def unavailable(error: BaseException) -> bool:
    """Redis is away or refuses for now (wait and try again), as opposed to a wrong command (a bug).

    Covers REDIS_ERRORS and the refusals redis-py has no class for; `except REDIS_ERRORS` covers the
    classified ones, this predicate the rest (`except redis.ResponseError as e: if not unavailable(e): raise`).
    """
    if isinstance(error, REDIS_ERRORS):
        return True
    return isinstance(error, redis.ResponseError) and str(error).lstrip().startswith(_REFUSAL_PREFIXES)


def refusal_name(error: BaseException) -> str:
    """A short name of why Redis is unavailable, for the one log line: `OOM`, `READONLY`, `LOADING`, ... or the
    exception's type name (ConnectionError, TimeoutError)."""
    names = {redis.exceptions.OutOfMemoryError: "OOM", redis.exceptions.ReadOnlyError: "READONLY",
             redis.BusyLoadingError: "LOADING"}
    for kind, name in names.items():
        if isinstance(error, kind):
            return name
    text = str(error).lstrip()
    if isinstance(error, redis.ResponseError) and text.startswith(_REFUSAL_PREFIXES):
        return text.split(" ", 1)[0]
    return type(error).__name__


# How often a client through Sentinel asks where the master is, besides at each new connection. A failover
# the Sentinels start while the old master still runs (`SENTINEL FAILOVER`, a network split healed) leaves that
# master taking writes until the Sentinels turn it into a replica, seconds later, and what it took meanwhile is
# lost then: asking every second keeps that window to about a second.
MASTER_CHECK_SECONDS = 1.0
# A blocking read through Sentinel (a worker's dequeue) blocks at most this long: it holds its connection to the
# master it started on, which the Sentinels close only when they turn that master into a replica (seconds after
# the failover, never while they cannot reach it).
SENTINEL_BLOCK_SECONDS = 2


class _ManagedConnection(SentinelManagedConnection):
    """redis-py's connection to the master through Sentinel, but a read cut short by an exception (a signal
    handler's, as RQ's SIGTERM handler raises StopRequested inside a blocking dequeue) closes it, as redis-py's
    other connections do. redis-py 8.1's leaves it open (`disconnect_on_error=False` by default, redis-py pull
    request 4292), so the next command on it would read the reply meant for the one cut short."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("disconnect_on_error", True)  # PubSub passes False on purpose: kept
        return super().read_response(*args, **kwargs)


class _ManagedSSLConnection(_ManagedConnection, SSLConnection):
    pass


class _AnnouncingProxy(SentinelConnectionPoolProxy):
    """What redis-py's Sentinel connections ask for the master's address (at each connect): one line when the
    Sentinels name another master than the one this pool knew."""

    def get_master_address(self) -> tuple[str, int]:
        before = self.master_address
        try:
            address = super().get_master_address()
        except MasterNotFoundError as error:
            raise MasterNotFoundError(_brief(error, len(self.sentinel_manager.sentinels))) from None
        if before is not None and self.master_address != before:
            log.warning("Redis: the Sentinels name a new master of %s: %s:%s (was %s:%s)", self.service_name,
                        *self.master_address, *before)
        return address


def _brief(error: MasterNotFoundError, sentinels: int) -> str:
    """redis-py's text without the reprs of its Sentinel clients (hundreds of characters each, and no reason):
    `No master found for 'mymaster': none of the 2 Sentinels answered`."""
    head, _, details = str(error).partition(" : ")
    silent = len(re.findall(r" - \S*Error", details))
    if silent >= sentinels:
        return f"{head}: none of the {sentinels} Sentinels answered" if sentinels > 1 else f"{head}: the Sentinel" \
            " did not answer"
    if silent:
        return f"{head}: {silent} of the {sentinels} Sentinels did not answer, the others name no master that is up"
    return f"{head}: the Sentinels name no master that is up"


class MasterFollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool (a new connection asks the Sentinels for the master; READONLY from a demoted
    master closes the connection and raises ConnectionError) that also asks every MASTER_CHECK_SECONDS when a
    connection is taken. When the master moved, one line says so, idle connections to the old one are closed
    and busy ones are dropped when given back (the pool owns only connections to the current master); one
    blocked in a read on the old master ends when the Sentinels turn it into a replica (they close its clients)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.proxy = _AnnouncingProxy(connection_pool=self, is_master=self.is_master,
                                      check_connection=self.check_connection, service_name=service_name,
                                      sentinel_manager=sentinel_manager)
        self.connection_kwargs["connection_pool"] = self.proxy
        self._checked_at = time.monotonic()
        self._checking = threading.Lock()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self._follow_master()
        return super().get_connection(*args, **kwargs)

    def _follow_master(self) -> None:
        now = time.monotonic()
        if self.master_address is None or now - self._checked_at < MASTER_CHECK_SECONDS:
            return  # the first connection asks anyway
        if not self._checking.acquire(blocking=False):
            return  # another thread is asking
        try:
            self._checked_at = now
            self.get_master_address()
        except redis.RedisError:
            pass  # no Sentinel answers: the master may still be there; connecting to it will tell
        finally:
            self._checking.release()


def through_sentinel(conn: redis.Redis) -> bool:
    """Whether `conn` reaches its master through Sentinel (made by `connect` from a Sentinel URL)."""
    return isinstance(conn.connection_pool, MasterFollowingPool)


def connect(settings: Settings, *, socket_timeout: float | None = 30.0, connect_timeout: float = 5.0) -> redis.Redis:
    """The one way to reach the project's Redis: timeouts on, so a vanished Redis gives an error, not a hang.

    With a Sentinel URL, the client of the service's master (`Sentinel.master_for`) in a MasterFollowingPool:
    new connections go where the Sentinels say the master is, a connection to a master demoted meanwhile
    (READONLY) is closed and raises ConnectionError, and every second the pool asks whether the master moved.
    So a failover reads like a Redis restart (a ConnectionError or two, then the new master), or goes unnoticed
    but for the pool's line when the old master still answered.
    """
    options: dict[str, Any] = {"socket_connect_timeout": connect_timeout, "socket_timeout": socket_timeout,
                               "health_check_interval": 30, "retry_on_timeout": False}
    if not sentinelurl.is_sentinel(settings.redis_url):
        return redis.Redis.from_url(settings.redis_url, **options)
    url = sentinelurl.parse(settings.redis_url)
    sentinel = Sentinel(list(url.sentinels), sentinel_kwargs=_asking(url, connect_timeout, socket_timeout),
                        **_master(url), **options)
    return sentinel.master_for(url.service, connection_pool_class=MasterFollowingPool)


def _asking(url: sentinelurl.SentinelURL, connect_timeout: float, socket_timeout: float | None) -> dict[str, Any]:
    """Connection arguments for the Sentinels: their credentials, short timeouts, and no retries with backoff
    (a Sentinel that does not answer is skipped at once for the next one)."""
    return {**url.sentinel_kwargs(), "socket_connect_timeout": connect_timeout,
            "socket_timeout": min(socket_timeout or 5.0, 5.0), "retry": Retry(NoBackoff(), 0)}


def _master(url: sentinelurl.SentinelURL) -> dict[str, Any]:
    """Connection arguments for the master: the URL's, and connections that close when a read is cut short."""
    return {**url.master_kwargs(), "connection_class": _ManagedSSLConnection if url.tls else _ManagedConnection}


def rq_settings(settings: Settings) -> dict[str, Any]:
    """REDIS_URL as rq's command line reads it from a settings module (`rq worker -c notifier.rqconfig`): a
    redis:// URL as it is, a Sentinel URL as rq's SENTINEL dictionary (rq connects with `master_for`)."""
    if not sentinelurl.is_sentinel(settings.redis_url):
        return {"REDIS_URL": settings.redis_url}
    url = sentinelurl.parse(settings.redis_url)
    master = _master(url)
    return {"SENTINEL": {
        "INSTANCES": list(url.sentinels), "MASTER_NAME": url.service, "DB": master.pop("db"),
        "USERNAME": master.pop("username"), "PASSWORD": master.pop("password"), "SSL": master.pop("ssl", False),
        "SOCKET_TIMEOUT": 30.0, "SENTINEL_KWARGS": _asking(url, 5.0, 30.0),
        "CONNECTION_KWARGS": {**master, "socket_connect_timeout": 5.0, "health_check_interval": 30}}}


def text(value: Any, errors: str = "strict") -> str:
    """A Redis reply (bytes) as text."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


def decoded(mapping: Any, errors: str = "strict") -> dict[str, str]:
    """A Redis hash or stream entry as text keys and values."""
    return {text(k, errors): text(v, errors) for k, v in mapping.items()}
