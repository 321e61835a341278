"""What a real machine does to running notifiers: the database blinks, Redis restarts or refuses writes,
the notifier holding the retry schedule dies.

Real `sofamon notify` subprocesses (tests/test_notifier_procs.py's helpers), the fake Discord, and
faults that are real to the processes: PostgreSQL behind a proxy the test cuts, a throwaway
redis-server the test stops, restarts, fills up or turns read-only.
"""
from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from shared.outbox import possible_duplicates
from shared.settings import Settings
from shared.storage import Database
from tests import servers
from tests.fakes.discord import FakeDiscord
from tests.fakes.tcpproxy import TcpProxy
from tests.ownredis import OwnRedis
from tests.test_notifier import enqueue, insert_alerts
from tests import test_notifier_procs
from tests.test_notifier_procs import Notifiers, delivered, sent_main, wait_for

notifiers = test_notifier_procs.notifiers  # the fixture: `sofamon notify` subprocesses, stopped after the test

OUTAGE = 5.0  # how long the database or Redis stays away


def _via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _lines(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


# -- the database away right after Discord accepted a message ----------------------------------------------
def test_database_away_after_discord_accepted_posts_each_alert_once(
        make_settings: Callable[..., Settings], pg_url: str, redis_conn: redis.Redis,
        notifiers: Callable[[Settings], Notifiers]) -> None:
    """PostgreSQL unreachable for 5 s between Discord's acceptance of a message and the commit of its sent
    state (longer than the lease): the message is recorded once the database is back, never posted again."""
    n = 40
    setup = Database(pg_url)
    setup.migrate()
    ids = insert_alerts(setup, n)
    with TcpProxy("127.0.0.1", urlsplit(pg_url).port or 5432) as proxy, \
            FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings = make_settings(database_url=_via(pg_url, proxy.port), discord_webhook_url=fake.url(),
                                 discord_messages_per_minute=100_000)
        enqueue(redis_conn, ids, intervals=(0, 1))
        # The first message is answered at once; the second is posted at once and answered a second later.
        fake.timeout_next(1, delay=0.0)
        fake.timeout_next(1, delay=1.0)
        group = notifiers(settings)
        group.env["NOTIFIER_LEASE_SECONDS"] = "2"  # the outage outlasts the claim's lease
        group.start()
        group.start()
        wait_for(lambda: len(fake.accepted) >= 2, 20, "the second message posted", group)
        proxy.cut()  # while the notifier waits for Discord's answer
        cut_at = time.monotonic()
        time.sleep(OUTAGE)
        proxy.restore()
        wait_for(lambda: sent_main(setup) == n, 30, "every alert sent", group)
        assert time.monotonic() - cut_at >= OUTAGE
        assert group.stop() == [0, 0]
        counts = Counter(delivered(fake))
        assert sorted(counts) == ids and set(counts.values()) == {1}  # each alert posted once
        output = group.output()
        assert "Traceback" not in output
        # One line says the message waits to be recorded, one that it was.
        assert len(_lines(output, "posted, but the database")) == 1
        assert len(_lines(output, "recorded as sent after")) == 1
        assert possible_duplicates(setup) == {}
    setup.close()


# -- Redis restarting or refusing writes under running notifiers (own_redis: tests/conftest.py) ----------
def _notifier_settings(make_settings: Callable[..., Settings], tmp_path: Path, fake: FakeDiscord,
                       server: OwnRedis) -> tuple[Settings, Database]:
    settings = make_settings(redis_url=server.url, database_url=f"sqlite:///{tmp_path}/faults.db",
                             discord_webhook_url=fake.url(), discord_messages_per_minute=100_000)
    db = Database(settings.database_url)
    db.migrate()
    return settings, db


def _alive(group: Notifiers) -> None:
    for proc in group.procs:
        assert proc.poll() is None, f"a notifier exited with {proc.returncode}\n{group.output()[-4000:]}"


@pytest.mark.parametrize("persistent", [True, False], ids=["with-data", "without-data"])
def test_notifier_rides_out_a_redis_restart(make_settings: Callable[..., Settings], tmp_path: Path,
                                            own_redis: Callable[[bool], OwnRedis],
                                            notifiers: Callable[[Settings], Notifiers], persistent: bool) -> None:
    """Redis stops for 5 s and comes back, with or without its data: the same notifier process goes on
    delivering: what was queued before, what the processor could not enqueue meanwhile (the sweeper gives it
    a job), and what is enqueued afterwards. One line says Redis is away, one that it is back."""
    server = own_redis(persistent)
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db = _notifier_settings(make_settings, tmp_path, fake, server)
        group = notifiers(settings)
        proc = group.start()
        before = insert_alerts(db, 3)
        enqueue(server.conn(), before)
        wait_for(lambda: sent_main(db) == 3, 20, "the first alerts sent", group)

        server.stop()
        during = insert_alerts(db, 3)  # the processor wrote them; enqueueing failed (Redis away)
        time.sleep(OUTAGE)
        _alive(group)
        server.start()
        after = insert_alerts(db, 3)
        enqueue(server.conn(), after)
        wait_for(lambda: sent_main(db) == 9, 30, "every alert sent after the restart", group)
        _alive(group)
        assert group.procs == [proc]
        assert group.stop() == [0]
    assert sorted(delivered(fake)) == before + during + after  # each once
    output = group.output()
    assert "Traceback" not in output and "unhandled exception" not in output
    assert len(_lines(output, "Redis unavailable")) == 1
    assert len(_lines(output, "Redis answers again")) == 1
    db.close()


def test_notifier_started_before_redis_waits_for_it(make_settings: Callable[..., Settings], tmp_path: Path,
                                                   own_redis: Callable[[bool], OwnRedis],
                                                   notifiers: Callable[[Settings], Notifiers]) -> None:
    """A notifier started while Redis is not up yet (a boot, a Redis restart longer than supervisord's
    patience) waits for it with one line instead of exiting, then delivers."""
    server = own_redis(False)
    server.stop()
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db = _notifier_settings(make_settings, tmp_path, fake, server)
        ids = insert_alerts(db, 3)  # pending, without jobs: the start-up sweep gives them one
        group = notifiers(settings)
        group.start()
        wait_for(lambda: "Redis unavailable" in group.output(), 20, "the notifier waiting for Redis", group)
        time.sleep(2)
        _alive(group)
        server.start()
        wait_for(lambda: sent_main(db) == 3, 30, "every alert sent", group)
        assert group.stop() == [0]
    assert delivered(fake) == ids
    output = group.output()
    assert "Traceback" not in output and len(_lines(output, "Redis unavailable")) == 1
    db.close()


@pytest.mark.parametrize("refusal", ["OOM", "READONLY"])
def test_notifier_waits_while_redis_refuses_writes(make_settings: Callable[..., Settings], tmp_path: Path,
                                                   own_redis: Callable[[bool], OwnRedis],
                                                   notifiers: Callable[[Settings], Notifiers], refusal: str) -> None:
    """Redis answers but refuses writes (out of memory; a read-only replica) while a message is in flight:
    the notifier waits with one line and delivers once Redis accepts writes again."""
    server = own_redis(False)
    admin = server.conn()
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings, db = _notifier_settings(make_settings, tmp_path, fake, server)
        ids = insert_alerts(db, 15)
        fake.timeout_next(1, delay=1.0)  # the first message is posted, its answer comes a second later
        group = notifiers(settings)
        group.start()
        enqueue(admin, ids)
        wait_for(lambda: len(fake.accepted) >= 1, 20, "the first message posted", group)
        if refusal == "OOM":
            admin.config_set("maxmemory", "1")
        else:
            admin.replicaof("127.0.0.1", str(servers.free_port()))  # a master that never answers
        time.sleep(OUTAGE)
        _alive(group)
        assert sent_main(db) == 10  # the posted message was recorded; nothing more went out
        if refusal == "OOM":
            admin.config_set("maxmemory", "0")
        else:
            admin.replicaof("NO", "ONE")
        wait_for(lambda: sent_main(db) == 15, 30, "every alert sent", group)
        _alive(group)
        assert group.stop() == [0]
    assert sorted(delivered(fake)) == ids
    output = group.output()
    assert "Traceback" not in output and "unhandled exception" not in output
    assert len(_lines(output, "Redis unavailable")) == 1, output
    assert refusal in _lines(output, "Redis unavailable")[0]
    db.close()


# -- the notifier scheduling retries dies -------------------------------------------------------------------
SCHEDULER_LOCK = "rq:scheduler-lock:alerts"


def test_retries_fire_on_time_after_the_scheduling_notifier_is_killed(
        make_settings: Callable[..., Settings], tmp_path: Path, redis_conn: redis.Redis,
        notifiers: Callable[[Settings], Notifiers]) -> None:
    """The notifier that moves due retries to the queue is killed: another takes over within seconds, so a
    retry due 2 s after a 5xx goes out about then (not after the minute RQ's scheduler lock used to hold)."""
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings = make_settings(database_url=f"sqlite:///{tmp_path}/sched.db", discord_webhook_url=fake.url(),
                                 discord_messages_per_minute=100_000)
        db = Database(settings.database_url)
        db.migrate()
        group = notifiers(settings)
        first = group.start()
        wait_for(lambda: redis_conn.exists(SCHEDULER_LOCK) == 1, 20, "the first notifier scheduling", group)
        second = group.start()
        wait_for(lambda: "delivering alerts" in (tmp_path / "notifier-1.err").read_text(), 20,
                 "the second notifier started", group)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # Delivery of one alert: its first try gets a 500, its retry is due 2 s later.
        fake.fail_next(1, 500)
        [alert_id] = insert_alerts(db, 1)
        enqueued_at = time.monotonic()
        enqueue(redis_conn, [alert_id], intervals=(2,))
        wait_for(lambda: sent_main(db) == 1, 30, "the retry delivered", group)
        took = time.monotonic() - enqueued_at
        assert fake.responses[-2:] == [500, 200]
        assert took < 2 + 6, f"the retry came {took:.1f} s after the first try"
        assert second.poll() is None
        assert group.stop()[1] == 0
    db.close()
