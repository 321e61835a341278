"""Redis connections with timeouts, so a vanished Redis gives an error instead of a hang."""
from __future__ import annotations

from typing import Any

import redis

from shared.settings import Settings

# Errors after which a process logs one line, waits and tries again.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


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
