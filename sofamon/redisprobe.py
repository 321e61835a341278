"""`python -m sofamon.redisprobe`: exit 0 when a Redis answers at REDIS_URL, 1 when none does.

`make run` asks this to decide whether to run an embedded redis-server. A REDIS_URL the user set
explicitly is never replaced by an embedded one: if it does not answer, that is reported and we stop.
"""
from __future__ import annotations

import os
import sys

import redis

from shared.redisconn import connect
from shared.settings import load_settings


def main() -> int:
    settings = load_settings()
    try:
        connect(settings, socket_timeout=2, connect_timeout=2).ping()
        return 0
    except (redis.ConnectionError, redis.TimeoutError):
        if "REDIS_URL" in os.environ or _in_dotenv():
            print("configuration error: REDIS_URL: nothing answers there", file=sys.stderr)
            raise SystemExit(2) from None
        return 1


def _in_dotenv() -> bool:
    try:
        with open(".env", encoding="utf-8") as env:
            return any(line.strip().startswith("REDIS_URL=") for line in env)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
