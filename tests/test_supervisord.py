"""The repository's own supervisord.conf, run in a scratch directory against the local fakes."""
from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests
from rq import Queue

from tests.conftest import TEST_REDIS_URL
from tests.fakes.discord import FakeDiscord
from tests.fakes.sofascore import FakeSofascore

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


DASHBOARD_PORT = _free_port()  # not a fixed number: two test runs on one machine must not collide


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll for an event that has no notification (a process state, a delivered message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Supervisor:
    def __init__(self, home: Path) -> None:
        self.home = home

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", str(self.home / "supervisord.conf"), *args],
                              capture_output=True, text=True, timeout=60, cwd=self.home)

    def states(self) -> dict[str, tuple[str, int | None]]:
        found = {}
        for line in self.ctl("status").stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = re.search(r"pid (\d+)", line)
                found[parts[0]] = (parts[1], int(pid.group(1)) if pid else None)
        return found

    def all_running(self) -> bool:
        states = self.states()
        return len(states) >= 6 and all(state == "RUNNING" for state, _ in states.values())

    def sofamon(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(VENV_BIN / "sofamon"), *args], capture_output=True, text=True, timeout=120,
                              cwd=self.home)


@pytest.fixture
def system(tmp_path: Path, redis_url: str) -> Iterator[tuple[Supervisor, FakeSofascore, FakeDiscord]]:
    home = tmp_path / "monitor"
    home.mkdir()
    config = (REPO / "supervisord.conf").read_text()
    # A tiny memory limit for the processor only, so memmon has something to act on.
    config = config.replace("-p processor=250MB", "-p processor=1MB")
    (home / "supervisord.conf").write_text(config)
    (home / ".venv").symlink_to(VENV_BIN.parent)
    (home / "var" / "log").mkdir(parents=True)
    with FakeSofascore() as sofascore, FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as discord:
        (home / ".env").write_text("\n".join([
            f"SOFASCORE_BASE_URL={sofascore.base_url}",
            f"DISCORD_WEBHOOK_URL={discord.url()}",
            f"REDIS_URL={TEST_REDIS_URL}",
            "REDIS_PREFIX=supervised",
            f"DATABASE_URL=sqlite:///{home}/data/monitor.db",
            f"RQ_DASHBOARD_PORT={DASHBOARD_PORT}",
            "TIME_LOOKAHEAD_HOURS=3360",
        ]) + "\n")
        daemon = subprocess.Popen([str(VENV_BIN / "supervisord"), "-n", "-c", str(home / "supervisord.conf")],
                                  cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        supervisor = Supervisor(home)
        try:
            wait_for(lambda: (home / "var" / "supervisor.sock").exists(), 30, "supervisord's socket")
            yield supervisor, sofascore, discord
        finally:
            supervisor.ctl("shutdown")
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()


def test_supervised_system_runs_delivers_and_is_operable(system: tuple[Supervisor, FakeSofascore, FakeDiscord]) -> None:
    supervisor, _sofascore, discord = system
    wait_for(supervisor.all_running, 60, "every program RUNNING")
    assert set(supervisor.states()) == {"fetcher", "processor", "notifier:notifier_00", "notifier:notifier_01",
                                        "rq-dashboard", "memmon"}
    # The first fetch cycle's tips reach Discord through the running processes.
    wait_for(lambda: len(discord.accepted_embeds()) >= 5, 60, "the first alerts on Discord")
    assert {e["author"]["name"] for e in discord.accepted_embeds()} >= {"GoalGuru_88", "Tactico.ES"}
    sock_mode = (supervisor.home / "var" / "supervisor.sock").stat().st_mode & 0o777
    assert sock_mode == 0o700

    # Restarting one program leaves the others alone.
    before = supervisor.states()
    assert supervisor.ctl("restart", "fetcher").returncode == 0
    after = supervisor.states()
    assert after["fetcher"][1] != before["fetcher"][1]
    assert {k: v for k, v in after.items() if k not in ("fetcher", "processor")} == \
        {k: v for k, v in before.items() if k not in ("fetcher", "processor")}

    # rq-dashboard answers on loopback, and on no other address.
    with socket.create_connection(("127.0.0.1", DASHBOARD_PORT), timeout=5):
        pass
    for address in _other_addresses():
        with pytest.raises(OSError):
            socket.create_connection((address, DASHBOARD_PORT), timeout=2).close()

    # The replay of everything recorded reproduces the alerts that reach Discord, changing nothing.
    replay = supervisor.sofamon("replay", "--dry-run")
    assert replay.returncode == 0, replay.stderr
    replayed = sorted(re.findall(r"^(new_tip|line_movement)\s.*?\b(159\d{5})\b", replay.stdout, re.MULTILINE))
    assert ("line_movement", "15981204") in replayed  # the fetcher's restart fetched the moved odds
    wait_for(lambda: _delivered(discord) == replayed, 60, "Discord to show exactly the replayed alerts")
    with sqlite3.connect(supervisor.home / "data" / "monitor.db") as db:
        rows = db.execute("SELECT COUNT(*) FROM alerts WHERE webhook = 'main'").fetchone()[0]
    assert rows == len(replayed)  # the replay added nothing to the real database

    # Healthy now; a stopped notifier makes `status` say so.
    wait_for(lambda: supervisor.sofamon("status").returncode == 0, 30, "a healthy status")
    assert supervisor.ctl("stop", "notifier:*").returncode == 0
    status = supervisor.sofamon("status")
    assert status.returncode == 1 and "notifier" in status.stdout.split("problems")[-1]


def test_memmon_restarts_a_program_over_its_limit(system: tuple[Supervisor, FakeSofascore, FakeDiscord]) -> None:
    supervisor, _sofascore, _discord = system
    wait_for(lambda: supervisor.states().get("processor", ("", None))[0] == "RUNNING", 60, "the processor")
    first_pid = supervisor.states()["processor"][1]
    # memmon checks on TICK_60; the processor is over its 1 MB test limit and gets restarted.
    wait_for(lambda: supervisor.states()["processor"][1] not in (first_pid, None), 90, "memmon's restart")
    log = (supervisor.home / "var" / "log" / "memmon.log").read_text()
    assert "processor" in log and "restart" in log.lower()


def _delivered(discord: FakeDiscord) -> list[tuple[str, str]]:
    """(kind, event id) of each alert embed Discord accepted."""
    kinds = {"New tip": "new_tip", "Line movement": "line_movement"}
    return sorted((next(v for k, v in kinds.items() if k in e["title"]), e["url"].rsplit(":", 1)[1])
                  for e in discord.accepted_embeds() if "author" in e)


def _other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (none in some sandboxes)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout if shutil.which("hostname") else ""
    return [a for a in out.split() if "." in a and not a.startswith("127.")]


def _with_redis_password(url: str) -> str:
    """The test Redis's URL with a password: Redis accepts any for its `default` user when it has none."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    return urlunsplit(parts._replace(netloc=f"default:redis-pw-SECRET@{parts.netloc}"))


def test_dashboard_asks_for_basic_auth_when_configured(tmp_path: Path, redis_url: str) -> None:
    port = DASHBOARD_PORT + 1
    redis_with_password = _with_redis_password(TEST_REDIS_URL)
    queue_name = f"only-in-this-db-{os.getpid()}"
    Queue(queue_name, connection=redis.Redis.from_url(redis_url)).enqueue("builtins.print", "x")
    env = {"PATH": os.environ["PATH"], "REDIS_URL": redis_with_password, "RQ_DASHBOARD_PORT": str(port),
           "RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": "s3cret-pass"}
    proc = subprocess.Popen([str(VENV_BIN / "sofamon"), "dashboard"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(answers, 30, "rq-dashboard to listen")
        url = f"http://127.0.0.1:{port}/"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("operator", "s3cret-pass"), timeout=10).status_code == 200
        # It reads the configured Redis and db, not rq-dashboard's default (db 0 of the same server).
        queues = requests.get(f"{url}0/data/queues.json", auth=("operator", "s3cret-pass"), timeout=10).json()
        assert queue_name in [q["name"] for q in queues["queues"]]
        # The passwords travel in the environment, not on the command line that `ps` shows (issue 9, finding 10:
        # the Redis URL was an argument); the queue above shows the dashboard reached it all the same.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "s3cret-pass" not in cmdline and "redis://" not in cmdline
        assert urlsplit(redis_with_password).password not in cmdline
    finally:
        proc.terminate()
        proc.wait(30)


def test_make_run_never_replaces_a_redis_the_user_configured(tmp_path: Path) -> None:
    """REDIS_URL set but silent: stop with one line; an embedded Redis would leave the programs unconnected."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "run.sh", tmp_path / "scripts" / "run.sh")
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    env = {"PATH": os.environ["PATH"], "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "run.sh")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "REDIS_URL: nothing answers there" in result.stderr
    assert not (tmp_path / "var" / "supervisor.d" / "redis.conf").exists()
    assert not (tmp_path / "var" / "supervisor.sock").exists()
