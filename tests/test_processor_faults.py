"""What a real machine does to a running processor: Redis restarts, with or without its data, or answers
but refuses writes (OOM, a read-only replica). The same processor goes on; one log line says so.

A processor runs in a thread (`Processor.run`, as `sofamon process` does) against a redis-server of the
test's own (tests/ownredis.py), which the test stops, restarts, fills up or turns read-only.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue

from processor.handle import Handler, Outcome
from processor.main import Processor
from shared import outbox
from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP, Keys
from shared.models import FetchRecord
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database
from tests import servers
from tests.fakes.sofascore import REF_NOW, load_fixture
from tests.ownredis import OwnRedis
from tests.test_processor import FAR_LOOKAHEAD, GURU, TACTICO, alerts, put

OUTAGE = 3.0  # how long Redis stays away or refuses


class Running:
    """A processor in a thread of its own, as its process runs it; `stop()` ends it like SIGTERM does."""

    def __init__(self, settings: Settings) -> None:
        # A database connection of its own: one SQLite connection is not for two threads at once.
        self.db = Database(settings.database_url)
        self.processor = Processor(settings, connect(settings), self.db, name="p1", clock=lambda: REF_NOW)
        self.result: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="processor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.processor.run(burst=False)
        except BaseException as error:  # noqa: BLE001 - the test reports it
            self.error = error

    def alive(self) -> None:
        assert self.thread.is_alive(), f"the processor ended: {self.error!r}"

    def stop(self) -> int | None:
        self.processor.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive()
        self.db.close()
        assert self.error is None, repr(self.error)
        return self.result


@pytest.fixture
def run_processor() -> Iterator[Callable[[Settings], Running]]:
    """Processors in threads, stopped after the test even when it failed (before their database closes)."""
    started: list[Running] = []

    def start(settings: Settings) -> Running:
        started.append(Running(settings))
        return started[-1]

    yield start
    for running in started:
        running.processor.stop.set()
        running.thread.join(15)
        running.db.close()


def wait_for(condition: Callable[[], bool], what: str, running: Running, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        running.alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
def setup(migrated_settings: Callable[..., Settings], tmp_path: Path) -> Callable[[OwnRedis], Settings]:
    def make(server: OwnRedis) -> Settings:
        return migrated_settings(redis_url=server.url, database_url=f"sqlite:///{tmp_path}/faults.db",
                                 time_lookahead_hours=FAR_LOOKAHEAD)

    return make


def alerted_predictors(db: Database) -> set[str]:
    return {r[2] for r in alerts(db)}


def enqueued(conn: redis.Redis) -> set[int]:
    return {outbox.alert_id_of(j) for j in Queue(ALERTS_QUEUE, connection=conn).job_ids}


@pytest.mark.parametrize("persistent", [True, False], ids=["with-data", "without-data"])
def test_processor_rides_out_a_redis_restart(own_redis: Callable[[bool], OwnRedis],
                                             setup: Callable[[OwnRedis], Settings], persistent: bool,
                                             run_processor: Callable[[Settings], Running],
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Redis stops and comes back, with its data or empty: the same processor goes on processing; without
    the data it recreates the stream's consumer group (not a crash on NOGROUP)."""
    caplog.set_level(logging.INFO)
    server = own_redis(persistent)
    settings = setup(server)
    db = Database(settings.database_url)
    conn = server.conn()
    running = run_processor(settings)
    put(conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    wait_for(lambda: alerted_predictors(db) == {GURU}, "GoalGuru's alerts", running)

    server.stop()
    time.sleep(OUTAGE)
    running.alive()
    server.start()
    conn = server.conn()
    put(conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    wait_for(lambda: alerted_predictors(db) == {GURU, TACTICO}, "Tactico's alerts after the restart", running)
    keys = Keys.of(settings)
    wait_for(lambda: conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0, "the entry acknowledged",
             running)
    assert {r[0] for r in alerts(db) if r[2] == TACTICO} <= enqueued(conn)
    assert running.stop() == 0

    assert "Traceback" not in caplog.text
    assert len(lines(caplog, "Redis unavailable")) == 1
    assert len(lines(caplog, "Redis answers again")) == 1
    recreated = lines(caplog, "consumer group")
    assert len(recreated) == (0 if persistent else 1), recreated
    db.close()


@pytest.mark.parametrize("refusal", ["OOM", "READONLY"])
def test_processor_waits_while_redis_refuses_writes(own_redis: Callable[[bool], OwnRedis],
                                                    setup: Callable[[OwnRedis], Settings], refusal: str,
                                                    run_processor: Callable[[Settings], Running],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Redis answers but refuses writes (out of memory; a read-only replica) when entries wait: the
    processor waits with one line, then processes them and enqueues their alerts, in the same run."""
    caplog.set_level(logging.INFO)
    server = own_redis(False)
    settings = setup(server)
    db = Database(settings.database_url)
    admin = server.conn()
    keys = Keys.of(settings)
    put(admin, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(admin, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    admin.xgroup_create(keys.fetched, PROCESSOR_GROUP, id="0")
    if refusal == "OOM":
        admin.config_set("maxmemory", "1")
    else:
        admin.replicaof("127.0.0.1", str(servers.free_port()))  # a master that never answers
    running = run_processor(settings)
    time.sleep(OUTAGE)
    running.alive()
    assert enqueued(admin) == set()
    if refusal == "OOM":
        admin.config_set("maxmemory", "0")
    else:
        admin.replicaof("NO", "ONE")
    wait_for(lambda: len(alerts(db)) == 2 and enqueued(admin) == {r[0] for r in alerts(db)},
             "the alerts recorded and enqueued", running)
    wait_for(lambda: admin.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0, "the entries acknowledged",
             running)
    assert running.stop() == 0

    assert "Traceback" not in caplog.text
    unavailable = lines(caplog, "Redis unavailable")
    assert len(unavailable) == 1 and refusal in unavailable[0], unavailable
    assert len(lines(caplog, "Redis answers again")) == 1
    db.close()


def test_redis_refusing_from_the_middle_of_a_batch_loses_nothing(own_redis: Callable[[bool], OwnRedis],
                                                                 setup: Callable[[OwnRedis], Settings],
                                                                 run_processor: Callable[[Settings], Running],
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Redis runs out of memory while a batch is handled: its entries are committed to the database, yet
    stay pending in the stream and their alerts wait in the outbox; once Redis takes writes again, each
    alert gets its job (one) and the entries are acknowledged."""
    caplog.set_level(logging.INFO)
    server = own_redis(False)
    settings = setup(server)
    db = Database(settings.database_url)
    admin = server.conn()
    keys = Keys.of(settings)
    put(admin, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(admin, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    put(admin, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    admin.xgroup_create(keys.fetched, PROCESSOR_GROUP, id="0")
    handle = Handler.handle

    def handle_then_fill_up(self: Handler, record: FetchRecord) -> Outcome:
        outcome = handle(self, record)
        if record.subject == GURU:  # the second entry of three
            admin.config_set("maxmemory", "1")
        return outcome

    monkeypatch.setattr(Handler, "handle", handle_then_fill_up)
    running = run_processor(settings)
    wait_for(lambda: bool(lines(caplog, "Redis unavailable")), "Redis refusing the batch's Redis side", running)
    assert alerted_predictors(db) == {GURU, TACTICO}  # committed, every entry of the batch
    assert enqueued(admin) == set()
    assert admin.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 3

    admin.config_set("maxmemory", "0")
    ids = {r[0] for r in alerts(db)}
    wait_for(lambda: admin.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0, "the entries acknowledged",
             running)
    jobs = Queue(ALERTS_QUEUE, connection=admin).get_job_ids()  # repeats included
    assert sorted(jobs) == sorted(outbox.job_id(i) for i in ids)
    assert {r[0] for r in alerts(db)} == ids  # nothing alerted twice either
    assert running.stop() == 0
    assert "Traceback" not in caplog.text
    assert len(lines(caplog, "Redis unavailable")) == 1 and "OOM" in lines(caplog, "Redis unavailable")[0]
    assert len(lines(caplog, "Redis answers again")) == 1
    db.close()
