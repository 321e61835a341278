"""The notifier's Lua scripts, kept as files in `notifier/lua/` and registered on a connection by name.

Each file says in its header comment what its KEYS and ARGV are. A file is read once per process;
`load` registers it on a connection (redis-py sends it by SHA, loading it into Redis when missing).
"""
from __future__ import annotations

import redis
from redis.commands.core import Script

from shared import scripts


def source(name: str) -> str:
    """The text of `notifier/lua/<name>.lua`."""
    return scripts.source("notifier", name)


def load(conn: redis.Redis, name: str) -> Script:
    """The script `name` (e.g. "reserve") registered on `conn`, ready to call with keys= and args=."""
    return conn.register_script(source(name))
