"""Several hundred alerts through two `sofamon notify` processes, a kill -9 and a restart.

Real subprocesses, real Redis, one SQLite file, the fake Discord with 5 requests per second
per webhook (learnt from its headers only). Each test stays well under a minute.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notifier.ratelimit import RateLimiter
from shared import outbox
from shared.keys import Keys
from shared.settings import Settings
from shared.storage import Database
from tests.fakes.discord import DEFAULT_WEBHOOK_TOKEN, FakeDiscord
from tests.test_notifier import ALERT_ID, enqueue, insert_alerts

N_ALERTS = 300
DEADLINE = 45.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("sofamon")
    return [str(script), "notify"] if script.exists() else [sys.executable, "-m", "sofamon.cli", "notify"]


class Notifiers:
    """`sofamon notify` subprocesses with their output in files."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ,
                    "REDIS_URL": settings.redis_url, "REDIS_PREFIX": settings.redis_prefix,
                    "DATABASE_URL": settings.database_url,
                    "DISCORD_WEBHOOK_URL": settings.discord_webhook_url.get_secret_value()  # type: ignore[union-attr]
                    if settings.discord_webhook_url else "",
                    "DISCORD_MESSAGES_PER_MINUTE": str(settings.discord_messages_per_minute),
                    "LOG_LEVEL": "INFO", "NOTIFIER_SWEEP_SECONDS": "2", "NOTIFIER_LOCK_TTL": "5",
                    "NOTIFIER_RETRY_INTERVALS": "0,1", "NOTIFIER_LEASE_SECONDS": "20"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        out = open(self.tmp_path / f"notifier-{n}.out", "wb")  # noqa: SIM115 - closed in stop()
        err = open(self.tmp_path / f"notifier-{n}.err", "wb")  # noqa: SIM115
        proc = subprocess.Popen(_command(), env=self.env, cwd=self.tmp_path, stdout=out, stderr=err)
        self.procs.append(proc)
        return proc

    def by_pid(self, pid: int) -> subprocess.Popen[bytes]:
        [proc] = [p for p in self.procs if p.pid == pid]
        return proc

    def stop(self) -> list[int | None]:
        """SIGTERM every running process; their exit statuses."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("notifier-*.*")))


@pytest.fixture
def notifiers(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[[Settings], Notifiers]]:
    started: list[Notifiers] = []

    def make(settings: Settings) -> Notifiers:
        group = Notifiers(settings, tmp_path)
        started.append(group)
        return group

    yield make
    for group in started:
        group.stop()


def sent_main(db: Database) -> int:
    with db.tx() as tx:
        row = tx.one("SELECT COUNT(*) FROM alerts WHERE webhook = 'main' AND state = 'sent'")
    return int(row[0]) if row else 0


def sending(db: Database) -> int:
    with db.tx() as tx:
        row = tx.one("SELECT COUNT(*) FROM alerts WHERE state = 'sending'")
    return int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, group: Notifiers) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{group.output()[-4000:]}")
        for proc in group.procs:
            if proc.poll() not in (None, 0, -signal.SIGKILL):
                pytest.fail(f"a notifier exited with {proc.returncode}\n{group.output()[-4000:]}")
        time.sleep(0.05)


def delivered(fake: FakeDiscord) -> list[int]:
    return [int(ALERT_ID.search(e["footer"]["text"]).group(1)) for e in fake.accepted_embeds()]  # type: ignore[union-attr]


def setup(make_settings: Callable[..., Settings], tmp_path: Path, fake: FakeDiscord,
          redis_conn: redis.Redis, n: int = N_ALERTS) -> tuple[Settings, Database, list[int]]:
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/procs.db", discord_webhook_url=fake.url(),
                             discord_messages_per_minute=100_000)
    db = Database(settings.database_url)
    db.migrate()
    ids = insert_alerts(db, n)
    enqueue(redis_conn, ids, intervals=(0, 1))
    return settings, db, ids


def common_checks(fake: FakeDiscord, group: Notifiers, db: Database, ids: list[int]) -> None:
    assert fake.count_429 == 0
    assert len(fake.accepted) <= len(ids) // 8  # up to ten alerts per message
    output = group.output()
    assert DEFAULT_WEBHOOK_TOKEN not in output
    with db.tx() as tx:
        rows = tx.all("SELECT id, state, message_id FROM alerts WHERE webhook = 'main' ORDER BY id")
    assert [r[0] for r in rows] == ids and all(r[1] == "sent" and r[2] for r in rows)


def test_two_notifiers_deliver_every_alert_once_in_order(make_settings: Callable[..., Settings], tmp_path: Path,
                                                         redis_conn: redis.Redis,
                                                         notifiers: Callable[[Settings], Notifiers]) -> None:
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db, ids = setup(make_settings, tmp_path, fake, redis_conn)
        group = notifiers(settings)
        group.start()
        group.start()
        wait_for(lambda: sent_main(db) == N_ALERTS, DEADLINE, "every alert sent", group)
        assert group.stop() == [0, 0]  # SIGTERM: both exit cleanly
        assert delivered(fake) == ids  # each exactly once, oldest first
        common_checks(fake, group, db, ids)
        # Each process started and stopped, but the health alerts about it are throttled: one each.
        output = group.output()
        assert output.count("health alert notifier-started") == 1
        assert output.count("health alert notifier-stopped") == 1
        with db.tx() as tx:
            titles = [r[0] for r in tx.all("SELECT payload FROM alerts WHERE webhook = 'health'")]
        assert any("Notifier started" in t for t in titles) and any("Notifier stopped" in t for t in titles)
        assert len(titles) == 2
        heartbeats = [k for k in redis_conn.scan_iter(match=f"{settings.redis_prefix}:heartbeat:*")]
        assert heartbeats == []  # cleared on the way out


def quiet_holder(keys: Keys, db: Database, fake: FakeDiscord, redis_conn: redis.Redis) -> dict[str, Any] | None:
    """The heartbeat of the notifier holding the webhook when it is provably between posts:
    nothing claimed, every accepted message recorded as sent, and the limiter keeps it waiting
    for a while (it holds no slot). Checked twice, 0.1 s apart."""
    limiter = RateLimiter(redis_conn, keys, 1)

    def snapshot() -> tuple[Any, ...] | None:
        token = redis_conn.get(keys.webhook_lock("main"))
        state = limiter.state("main")
        if not token or state.get("remaining") != "0":
            return None
        if float(state.get("reset_at", 0)) - time.time() < 0.4 or sending(db):
            return None
        if sent_main(db) != len(fake.accepted_embeds()):
            return None
        return token, len(fake.accepted), sent_main(db)

    first = snapshot()
    if first is None:
        return None
    time.sleep(0.1)
    if snapshot() != first:
        return None
    owner = first[0].decode().partition("|")[0]  # `notifier:<instance id>`: its heartbeat says who and where
    raw = redis_conn.get(keys.heartbeat(owner))
    return json.loads(raw) if raw else None


def _quiet_holder(settings: Settings, db: Database, fake: FakeDiscord, redis_conn: redis.Redis) -> int | None:
    """The pid of the notifier holding the webhook between posts (`quiet_holder`)."""
    beat = quiet_holder(Keys.of(settings), db, fake, redis_conn)
    return int(beat["pid"]) if beat else None


def test_kill_9_mid_burst_then_restart_delivers_everything(make_settings: Callable[..., Settings], tmp_path: Path,
                                                           redis_conn: redis.Redis,
                                                           notifiers: Callable[[Settings], Notifiers]) -> None:
    # Windows of 2.5 s: the holder waits long enough between bursts to be seen waiting on a busy machine.
    with FakeDiscord(bucket_limit=5, bucket_window=2.5, channel_per_minute=None) as fake:
        settings, db, ids = setup(make_settings, tmp_path, fake, redis_conn)
        group = notifiers(settings)
        group.start()
        group.start()
        wait_for(lambda: sent_main(db) >= 40, DEADLINE, "a first part sent", group)
        holder: int | None = None
        deadline = time.monotonic() + 10
        while holder is None and time.monotonic() < deadline and sent_main(db) < N_ALERTS - 50:
            holder = _quiet_holder(settings, db, fake, redis_conn)
        assert holder is not None, "never saw the lock holder waiting for the limiter"
        victim = group.by_pid(holder)
        at_kill = sent_main(db)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert at_kill < N_ALERTS
        group.start()  # the replacement (its sweeper repairs the dead one's job)
        wait_for(lambda: sent_main(db) == N_ALERTS, DEADLINE, "every alert sent after the kill", group)
        codes = group.stop()
        assert codes[0] == -signal.SIGKILL or codes[1] == -signal.SIGKILL
        assert sorted(c for c in codes if c != -signal.SIGKILL) == [0, 0]
        # Killed between posts: nothing was lost and nothing was posted twice, still oldest first.
        got = delivered(fake)
        assert [a for a, n in Counter(got).items() if n > 1] == []
        assert got == ids
        common_checks(fake, group, db, ids)


def test_sigterm_mid_burst_stops_cleanly_and_loses_nothing(make_settings: Callable[..., Settings], tmp_path: Path,
                                                            redis_conn: redis.Redis,
                                                            notifiers: Callable[[Settings], Notifiers]) -> None:
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db, ids = setup(make_settings, tmp_path, fake, redis_conn)
        group = notifiers(settings)
        first = group.start()
        wait_for(lambda: sent_main(db) >= 40, DEADLINE, "a first part sent", group)
        first.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert first.wait(timeout=10) == 0
        assert time.monotonic() - stopped_at < 5  # the message in hand, not the whole backlog
        assert sending(db) == 0  # nothing left claimed
        left = N_ALERTS - sent_main(db)
        assert left > 0
        group.start()  # its sweeper gives the alerts whose jobs ended early a job again
        wait_for(lambda: sent_main(db) == N_ALERTS, DEADLINE, "every alert sent after the restart", group)
        codes = group.stop()
        assert codes == [0, 0], group.output()[-4000:]
        assert delivered(fake) == ids
        common_checks(fake, group, db, ids)


HOLD = 4.0  # the fake answers the held message this late: longer than the kill takes...
HTTP_TIMEOUT = 15.0  # ...and well inside the notifier's HTTP timeout: no timeout is involved


def test_kill_9_during_a_post_loses_nothing(make_settings: Callable[..., Settings], tmp_path: Path,
                                            redis_conn: redis.Redis,
                                            notifiers: Callable[[Settings], Notifiers]) -> None:
    """kill -9 while Discord has posted a message but not answered yet: the documented crash window.

    Only that message's alerts may appear twice; everything else exactly once, nothing lost.
    """
    n = 48
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db, ids = setup(make_settings, tmp_path, fake, redis_conn, n=n)
        # The first two messages are answered at once, the third is posted (recorded) at once
        # but answered only after HOLD seconds. Queued before the start: no race with the notifier.
        fake.timeout_next(2, delay=0.0)
        fake.timeout_next(1, delay=HOLD)
        group = notifiers(settings)
        group.env["NOTIFIER_HTTP_TIMEOUT"] = str(HTTP_TIMEOUT)
        victim = group.start()

        def held() -> list[int] | None:
            """Alerts of the held message once the fake has posted it and the notifier waits for the answer."""
            with fake.lock:
                if len(fake.accepted) < 3:
                    return None
                message = fake.accepted[2]
            alerts = [int(ALERT_ID.search(e["footer"]["text"]).group(1))  # type: ignore[union-attr]
                      for e in message["payload"]["embeds"]]
            with db.tx() as tx:
                marks = ",".join("?" * len(alerts))
                rows = tx.all(f"SELECT state FROM alerts WHERE id IN ({marks})", tuple(alerts))
            assert [r[0] for r in rows] == ["sending"] * len(alerts)  # claimed, the answer not in yet
            return alerts

        wait_for(lambda: held() is not None, 15, "the held message posted", group)
        in_flight = held()
        assert in_flight
        posted_at = fake.accepted[2]["time"]  # the fake's clock is time.monotonic
        before = delivered(fake)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # Killed before the fake could answer: provably between Discord's post and its answer.
        assert time.monotonic() - posted_at < HOLD - 0.5
        assert victim.returncode == -signal.SIGKILL
        assert sent_main(db) == len(before) - len(in_flight) < n
        assert before[-len(in_flight):] == in_flight

        group.start()  # releases the dead notifier's claim and replaces its job at once
        wait_for(lambda: sent_main(db) == n, 15, "every alert sent after the kill", group)
        codes = group.stop()
        assert codes == [-signal.SIGKILL, 0]

        got = delivered(fake)
        counts = Counter(got)
        assert set(counts) == set(ids)  # nothing lost
        assert sorted(a for a, c in counts.items() if c > 1) == in_flight  # only the crash window
        assert all(counts[a] == 2 for a in in_flight)
        assert all(counts[a] == 1 for a in ids if a not in in_flight)
        # Counted, so `sofamon status` can say how often it happened.
        [doubt] = outbox.possible_duplicates(db).values()
        assert (doubt.kind, doubt.times, doubt.alerts) == (outbox.NOTIFIER_DIED, 1, len(in_flight))
        # Still oldest first: the released alerts went out again before the rest.
        assert got == before + ids[len(before) - len(in_flight):]
        common_checks(fake, group, db, ids)
