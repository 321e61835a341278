"""Redis connections with timeouts, so a vanished Redis gives an error instead of a hang."""
from __future__ import annotations

import redis

from shared.settings import Settings

# Errors after which a process logs one line, waits and tries again.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def connect(settings: Settings, *, socket_timeout: float | None = 30.0) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )
