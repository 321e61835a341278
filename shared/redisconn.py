"""Redis connections with timeouts, so a vanished Redis gives an error instead of a hang."""
from __future__ import annotations

from typing import Any

import redis

from shared.settings import Settings

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


def connect(settings: Settings, *, socket_timeout: float | None = 30.0, connect_timeout: float = 5.0) -> redis.Redis:
    """The one way to reach the project's Redis: timeouts on, so a vanished Redis gives an error, not a hang."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def text(value: Any, errors: str = "strict") -> str:
    """A Redis reply (bytes) as text."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)


def decoded(mapping: Any, errors: str = "strict") -> dict[str, str]:
    """A Redis hash or stream entry as text keys and values."""
    return {text(k, errors): text(v, errors) for k, v in mapping.items()}
