"""A webhook's lingering drain (notifier/lingering.py): new alerts handed to the RQ job holding the webhook's
lock instead of getting a job each, and never stranded when that drain leaves or dies.

Real Redis, both databases, the fake Discord; the drain runs in a thread (`deliver_alert`, as RQ calls it) or
in a real `sofamon notify` process (kill -9). The hand-over at the drain's exit is tested on its scripts.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus

import notifier.deliver
from notifier import context, lingering, scripts, sweeper
from notifier.deliver import _deliver, deliver_alert
from notifier.lock import WebhookLock
from shared.jobs import alerts_queue, enqueue_alert
from shared.keys import Keys
from shared.outbox import job_id
from shared.settings import Settings
from shared.storage import Database
from tests import test_notifier_procs
from tests.commandcount import CommandCounter
from tests.fakes.discord import FakeDiscord
from tests.test_notifier import beat_elsewhere, ctx, delivered_ids, insert_alerts, settings_for, states  # noqa: F401
from tests.test_notifier_procs import Notifiers, delivered, sent_main, wait_for

notifiers = test_notifier_procs.notifiers  # the fixture: `sofamon notify` subprocesses, stopped after the test


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def roomy_fake() -> Iterator[FakeDiscord]:
    """Limits out of the way: a message per alert goes at once."""
    with FakeDiscord(bucket_limit=50, bucket_window=1.0, channel_per_minute=None) as server:
        yield server


class Drain:
    """A delivery job run as RQ runs it (`deliver_alert`), in a thread, by a notifier whose jobs linger."""

    def __init__(self, settings: Settings) -> None:
        self.ctx = context.create(settings, linger=True)
        self.results: list[str] = []
        self.thread: threading.Thread | None = None

    def start(self, alert_id: int) -> None:
        context.install(self.ctx)
        self.thread = threading.Thread(target=lambda: self.results.append(deliver_alert(alert_id)))
        self.thread.start()

    def registered(self) -> bool:
        return bool(self.ctx.redis.exists(self.ctx.keys.drain_owner("main")))

    def join(self) -> str:
        assert self.thread is not None
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()
        return self.results[0]

    def stop(self) -> None:
        """A stop request, as the notifier's signal handler and maintenance thread make it."""
        self.ctx.stopping.set()
        lingering.wake(self.ctx)

    def close(self) -> None:
        self.stop()
        if self.thread is not None:
            self.thread.join(timeout=15)
        context.reset()
        self.ctx.db.close()
        self.ctx.redis.close()


@pytest.fixture
def drain(settings_for: Callable[..., Settings], roomy_fake: FakeDiscord) -> Iterator[Drain]:  # noqa: F811
    # Lingers far longer than any test: each ends its drain itself (a stop, a failure).
    running = Drain(settings_for(discord_webhook_url=roomy_fake.url("111"), notifier_linger_seconds=60))
    yield running
    running.close()


# -- the scripts: hand-over, and the drain's exit atomic with it ---------------------------------------------
def test_an_alert_is_handed_over_only_while_a_drain_is_registered(redis_conn: redis.Redis) -> None:
    keys = Keys("t-drain")
    stream, owner = keys.drain("main"), keys.drain_owner("main")
    queue = alerts_queue(redis_conn)
    register, close = scripts.load(redis_conn, "drain_register"), scripts.load(redis_conn, "drain_close")

    assert enqueue_alert(queue, 1, retry_intervals=(), drain=stream)  # no drain: a job, and no stream made
    assert redis_conn.exists("rq:job:alert-1") and not redis_conn.exists(stream)
    first = register(keys=[stream, owner], args=["tok", 5000])
    assert enqueue_alert(queue, 2, retry_intervals=(), drain=stream)  # handed over: no job
    assert not redis_conn.exists("rq:job:alert-2") and queue.get_job_ids() == ["alert-1"]
    [(second, fields)] = redis_conn.xrange(stream, f"({first.decode()}", "+")
    assert fields == {b"job": b"alert-2"}
    assert 0 < redis_conn.pttl(owner) <= 5000 and 0 < redis_conn.pttl(stream) <= 5000

    assert close(keys=[stream, owner], args=["someone-else", second]) == [0]  # not that drain's to close
    assert close(keys=[stream, owner], args=["tok", first]) == [2, second]  # alert 2 came after `first`: stays
    assert close(keys=[stream, owner], args=["tok", second]) == [1]  # nothing after `second`: unregistered
    assert not redis_conn.exists(stream, owner)
    assert enqueue_alert(queue, 3, retry_intervals=(), drain=stream)  # gone: a job again
    assert queue.get_job_ids() == ["alert-1", "alert-3"] and not redis_conn.exists(stream)


def test_no_alert_is_lost_when_the_drain_leaves_while_alerts_keep_coming(redis_url: str,
                                                                           redis_conn: redis.Redis) -> None:
    """The race the close script settles: a producer hands alerts over as fast as it can while the drain reads
    and tries to leave, 20 times over. Every alert is either read by the drain before it left, or got a job:
    never both, never neither."""
    keys = Keys("t-race")
    stream, owner = keys.drain("main"), keys.drain_owner("main")
    register, close = scripts.load(redis_conn, "drain_register"), scripts.load(redis_conn, "drain_close")
    queue = alerts_queue(redis_conn)
    read: list[int] = []
    produced: list[int] = []
    for _ in range(20):
        first = register(keys=[stream, owner], args=["tok", 60_000]).decode()
        closed = threading.Event()
        errors: list[BaseException] = []
        after_close = [0]

        def produce() -> None:
            conn = redis.Redis.from_url(redis_url)
            try:
                # Until well after the drain left; a pause now and then leaves the drain a chance to leave at all.
                while not closed.is_set() or len(produced) < after_close[0] + 50:
                    alert_id = len(produced) + 1
                    assert enqueue_alert(alerts_queue(conn), alert_id, retry_intervals=(), drain=stream)
                    produced.append(alert_id)
                    if alert_id % 500 == 0:
                        closed.wait(10)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                conn.close()

        producer = threading.Thread(target=produce)
        producer.start()
        last, read_here = first, 0
        while True:
            for _, items in redis_conn.xread({stream: last}, count=1000, block=1) or []:
                for entry_id, fields in items:
                    read.append(int(fields[b"job"].decode().removeprefix("alert-")))
                    read_here += 1
                    last = entry_id.decode()
            if read_here:  # something came: try to leave (refused whenever an alert came since `last`)
                reply = close(keys=[stream, owner], args=["tok", last])
                if reply == [1]:
                    after_close[0] = len(produced)
                    closed.set()
                    break
                assert reply[0] == 2
        producer.join(60)
        assert errors == []
        assert not redis_conn.exists(stream, owner)
    with_jobs = [int(j.removeprefix("alert-")) for j in queue.get_job_ids()]
    assert set(read).isdisjoint(with_jobs)
    assert sorted(read + with_jobs) == produced  # each once: read by the drain, or a job
    assert read and len(with_jobs) >= 20 * 40  # each round, alerts came before and after the drain left


# -- a drain delivering ----------------------------------------------------------------------------------
def test_alerts_handed_to_a_lingering_drain_go_out_without_a_job_of_their_own(
        drain: Drain, roomy_fake: FakeDiscord, db: Database, redis_conn: redis.Redis, redis_url: str) -> None:
    [first] = insert_alerts(db, 1)
    keys = drain.ctx.keys
    queue = alerts_queue(redis_conn)
    drain.start(first)
    wait_until(drain.registered, "the job registered as the webhook's drain")
    assert delivered_ids(roomy_fake) == [first]
    rest: list[int] = []
    with CommandCounter(redis_url) as counter:
        for n in range(2, 22):  # one alert at a time, as the processor enqueues them when they come alone
            [alert_id] = insert_alerts(db, 1)
            rest.append(alert_id)
            assert enqueue_alert(queue, alert_id, retry_intervals=(), drain=keys.drain("main"))
            assert not redis_conn.exists(f"rq:job:alert-{alert_id}")
            wait_until(lambda: len(roomy_fake.accepted) == n, f"alert {alert_id} delivered")
        commands = counter.stop()
    assert delivered_ids(roomy_fake) == [first, *rest]  # each once, in order, each in a message of its own
    assert queue.count == 0 and not redis_conn.keys("rq:job:*")
    # The hand-over (2), the drain's read (1), its reservation (5), and its lock's renewals: where RQ's job
    # cycle alone was about 50.
    assert sum(commands.values()) / len(rest) <= 10, commands
    assert roomy_fake.count_429 == 0

    # A job of the webhook (say a retry, or a requeue) that finds the lock held by the drain hands its alert over.
    [late] = insert_alerts(db, 1)
    assert _deliver(drain.ctx.for_thread(), late) == "handed to the webhook's drain"
    wait_until(lambda: delivered_ids(roomy_fake)[-1:] == [late], "the late alert delivered by the drain")

    drain.stop()  # the drain leaves (nothing is left to give a job)
    assert drain.join() == "stopping"
    assert not redis_conn.exists(keys.drain("main"), keys.drain_owner("main"), keys.webhook_lock("main"))
    assert {state for state, _, _ in states(db).values()} == {"sent"}


def test_a_drain_that_fails_leaves_and_gives_what_it_was_handed_a_job(
        drain: Drain, roomy_fake: FakeDiscord, db: Database, redis_conn: redis.Redis) -> None:
    [first] = insert_alerts(db, 1)
    keys = drain.ctx.keys
    drain.start(first)
    wait_until(drain.registered, "the job registered as the webhook's drain")
    [handed] = insert_alerts(db, 1)
    roomy_fake.fail_next(1, 500)
    assert enqueue_alert(alerts_queue(redis_conn), handed, retry_intervals=(), drain=keys.drain("main"))
    assert drain.join() == "delivered, then a failed attempt"
    assert roomy_fake.responses == [200, 500]
    assert states(db)[handed][0] == "pending"
    # Unregistered first, so the alert got a real job, with the notifier's retries.
    assert not redis_conn.exists(keys.drain("main"), keys.drain_owner("main"))
    job = Job.fetch(job_id(handed), connection=redis_conn)
    assert job.get_status() == JobStatus.QUEUED and alerts_queue(redis_conn).get_job_ids() == [job.id]
    assert job.retries_left == len(drain.ctx.config.retry_intervals)


def test_a_drain_leaves_when_a_job_waits_for_its_worker(drain: Drain, db: Database, redis_conn: redis.Redis,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A notifier alone (or every worker lingering): a job of another webhook waits in the queue. The drain sees
    it waiting at two looks in a row and leaves, so that its worker can run it."""
    monkeypatch.setattr(notifier.deliver, "QUEUE_LOOK_SECONDS", 0.5)  # 5 s between looks otherwise
    monkeypatch.setattr(notifier.deliver, "WAIT_SLICE_SECONDS", 0.5)
    [first] = insert_alerts(db, 1)
    drain.start(first)
    wait_until(drain.registered, "the job registered as the webhook's drain")
    [health_alert] = insert_alerts(db, 1, webhook="health")
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, health_alert, retry_intervals=(), drain=drain.ctx.keys.drain("health"))
    started = time.monotonic()
    assert drain.join() == "delivered"
    assert time.monotonic() - started < 5
    assert not drain.registered() and queue.get_job_ids() == [job_id(health_alert)]


# -- the sweeper and drains that are gone ------------------------------------------------------------------
def test_the_sweeper_leaves_a_live_drain_its_alerts_and_gives_a_gone_ones_jobs(
        ctx: context.NotifierContext, db: Database, redis_conn: redis.Redis) -> None:  # noqa: F811
    ids = insert_alerts(db, 2)
    keys = ctx.keys
    register = scripts.load(redis_conn, "drain_register")
    queue = alerts_queue(redis_conn)

    def registered(token: str) -> None:
        register(keys=[keys.drain("main"), keys.drain_owner("main")], args=[token, 60_000])

    beat_elsewhere(redis_conn, keys, "notifier:aaaaaaaaaaaa")  # alive, on another machine
    registered("notifier:aaaaaaaaaaaa|a")
    assert sweeper.sweep(ctx)["draining"] == 2 and queue.count == 0
    ctx.draining["main"] = f"{ctx.owner}|b"
    registered(f"{ctx.owner}|b")  # this process's own running drain
    assert sweeper.sweep(ctx)["draining"] == 2 and queue.count == 0

    for gone in ("notifier:bbbbbbbbbbbb|c",  # a notifier without a heartbeat: gone (kill -9, wherever it ran)
                 f"{ctx.owner}|d"):  # a job of this process that ended without unregistering (Redis away then)
        registered(gone)
        report = sweeper.sweep(ctx)
        assert report["enqueued"] == 2 and report["draining"] == 0
        assert not redis_conn.exists(keys.drain("main"), keys.drain_owner("main"))
        assert sorted(queue.get_job_ids()) == sorted(job_id(i) for i in ids)
        for alert_id in ids:
            Job.fetch(job_id(alert_id), connection=redis_conn).delete(remove_from_queue=True)


def test_the_lock_renewal_keeps_the_drains_lease(ctx: context.NotifierContext,  # noqa: F811
                                                  redis_conn: redis.Redis) -> None:
    lock = WebhookLock(redis_conn, ctx.keys.webhook_lock("main"), ctx.owner, ttl=5)
    assert lock.try_acquire()
    try:
        registration = lingering.register(ctx, "main", lock)
        keys = [registration.stream, registration.owner_key]
        for key in keys:
            redis_conn.pexpire(key, 100)  # as if its lease nearly ran out
        renew = scripts.load(redis_conn, "renew")
        assert renew(keys=[lock.key, *keys], args=[lock.token, 5000, lock.token]) == 1
        assert all(redis_conn.pttl(key) > 4000 for key in keys)
        assert registration.resign() and not redis_conn.exists(*keys)
    finally:
        lingering.forget(ctx, "main", lock)
        lock.release()
    assert ctx.draining == {}


# -- kill -9 of a notifier whose job lingers ------------------------------------------------------------
def test_alerts_handed_to_a_drain_killed_9_are_swept_and_sent_once(make_settings: Callable[..., Settings],
                                                                   tmp_path: Path, redis_conn: redis.Redis,
                                                                   notifiers: Callable[[Settings], Notifiers]) -> None:
    """The drain's process is frozen with alerts handed to it, then killed: they are pending without a job. The
    next notifier's sweeper sees the drain is gone and gives them jobs: each is sent once, in order."""
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as fake:
        settings = make_settings(database_url=f"sqlite:///{tmp_path}/linger.db", discord_webhook_url=fake.url(),
                                 discord_messages_per_minute=100_000)
        db = Database(settings.database_url)
        db.migrate()
        keys = Keys.of(settings)
        queue = alerts_queue(redis_conn)
        group = notifiers(settings)
        # Lingering far longer than the test; leases (the lock's TTL) far longer than the kill takes.
        group.env.update(NOTIFIER_LINGER_SECONDS="60", NOTIFIER_LOCK_TTL="30")
        first = insert_alerts(db, 1)
        assert enqueue_alert(queue, first[0], retry_intervals=(0, 1))
        victim = group.start()
        wait_for(lambda: sent_main(db) == 1 and redis_conn.exists(keys.drain_owner("main")) == 1, 20,
                 "the first alert sent and its job lingering as the drain", group)
        victim.send_signal(signal.SIGSTOP)
        try:
            handed = insert_alerts(db, 5)
            for alert_id in handed:
                assert enqueue_alert(queue, alert_id, retry_intervals=(0, 1), drain=keys.drain("main"))
            assert not any(redis_conn.exists(f"rq:job:alert-{alert_id}") for alert_id in handed)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        assert sent_main(db) == 1
        group.start()  # its start-up sweep finds the drain's process gone
        wait_for(lambda: sent_main(db) == 6, 30, "every alert sent after the kill", group)
        wait_for(lambda: redis_conn.exists(keys.drain_owner("main")) == 1, 20, "the new job lingering", group)
        stopping = time.monotonic()
        assert group.stop()[1] == 0  # SIGTERM: the lingering drain is woken and leaves at once
        assert time.monotonic() - stopping < 5
        assert not redis_conn.exists(keys.drain("main"), keys.drain_owner("main"))
        got = delivered(fake)
        assert got == first + handed and set(Counter(got).values()) == {1}
        assert fake.count_429 == 0
        assert "its drain notifier:" in group.output() and "is gone" in group.output()
        db.close()

