"""Alert jobs enqueued in batches (shared/jobs.py) against real Redis: RQ's job, one job per alert, ever at once."""
from __future__ import annotations

import random
import threading

import redis
from rq import Retry
from rq.job import Job, JobStatus

from notifier import scripts
from processor.commit import ZSetChange, commit
from shared.jobs import DELIVER, FAILURE_TTL, JOB_TIMEOUT, AlertJob, alerts_queue, enqueue_alert, enqueue_alerts
from shared.keys import Keys
from shared.outbox import job_id
from tests.commandcount import CommandCounter

INTERVALS = (10, 60, 300)


def enqueue_batch(conn: redis.Redis, ids: list[int]) -> None:
    with conn.pipeline(transaction=True) as pipe:
        enqueue_alerts(pipe, alerts_queue(conn), [AlertJob(i, f"new_tip alert {i}") for i in ids],
                       retry_intervals=INTERVALS)
        pipe.execute()


def queued(conn: redis.Redis) -> list[str]:
    """The queue's job ids, repeats included."""
    return alerts_queue(conn).get_job_ids()


def test_a_batch_writes_the_job_rq_itself_writes(redis_conn: redis.Redis) -> None:
    queue = alerts_queue(redis_conn)
    queue.enqueue_call(DELIVER, args=(1,), job_id=job_id(1), description="alert 1: new_tip alert 1",
                       timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=FAILURE_TTL,
                       retry=Retry(max=len(INTERVALS), interval=list(INTERVALS)), unique=True)
    enqueue_batch(redis_conn, [2])

    def fields(alert_id: int) -> dict[bytes, bytes]:
        # When it was made differs; what it runs is the same call with another argument.
        changing = {b"created_at", b"enqueued_at", b"data", b"description"}
        return {k: v for k, v in redis_conn.hgetall(f"rq:job:alert-{alert_id}").items() if k not in changing}

    assert fields(2) == fields(1)
    job = Job.fetch(job_id(2), connection=redis_conn)
    assert (job.func_name, job.args, job.description) == (DELIVER, (2,), "alert 2: new_tip alert 2")
    assert (job.get_status(), job.retries_left, job.retry_intervals) == (JobStatus.QUEUED, 3, list(INTERVALS))
    assert queued(redis_conn) == [job_id(1), job_id(2)]
    assert redis_conn.sismember("rq:queues", queue.key)


def test_an_alert_gets_one_job_however_often_it_is_enqueued(redis_conn: redis.Redis) -> None:
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, 5, retry_intervals=INTERVALS)  # e.g. the notifiers' sweeper was first
    # A job that failed every retry waits in RQ's failed registry for `sofamon requeue`: not enqueued again.
    assert enqueue_alert(queue, 6, retry_intervals=INTERVALS)
    failed = Job.fetch(job_id(6), connection=redis_conn)
    queue.remove(failed)
    failed.set_status(JobStatus.FAILED)

    ids = list(range(1, 1200))  # more than one script call
    enqueue_batch(redis_conn, ids)
    enqueue_batch(redis_conn, ids)  # the Redis side of the same entries done again (its reply was lost)
    with redis_conn.pipeline(transaction=True) as pipe:  # twice in one transaction
        enqueue_alerts(pipe, queue, [AlertJob(7), AlertJob(7)], retry_intervals=INTERVALS)
        pipe.execute()
    assert enqueue_alert(queue, 8, retry_intervals=INTERVALS) is False

    jobs = queued(redis_conn)
    assert sorted(jobs) == sorted(job_id(i) for i in ids if i != 6)
    assert Job.fetch(job_id(6), connection=redis_conn).get_status() == JobStatus.FAILED


def test_two_processes_enqueueing_the_same_alerts_at_once_make_one_job_each(redis_url: str) -> None:
    ids = list(range(1, 1501))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def enqueue(seed: int) -> None:
        conn = redis.Redis.from_url(redis_url)
        order = ids[:]
        random.Random(seed).shuffle(order)
        try:
            barrier.wait()
            for first in range(0, len(order), 100):
                enqueue_batch(conn, order[first:first + 100])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            conn.close()

    threads = [threading.Thread(target=enqueue, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    conn = redis.Redis.from_url(redis_url)
    jobs = queued(conn)
    assert len(jobs) == len(ids) and set(jobs) == {job_id(i) for i in ids}
    conn.close()


def test_the_processors_batch_script_does_the_whole_redis_side_at_once(redis_conn: redis.Redis) -> None:
    """processor/commit.py: events watched, deferred tips followed, alerts enqueued (more than one script call's
    worth, so in one transaction) or handed to a lingering drain, the entries acknowledged."""
    keys = Keys("t-commit")
    redis_conn.xgroup_create(keys.fetched, "g", id="0", mkstream=True)
    entries = [redis_conn.xadd(keys.fetched, {"n": str(i)}).decode() for i in range(3)]
    redis_conn.xreadgroup("g", "c", {keys.fetched: ">"})
    redis_conn.zadd(keys.deferred_tips, {"1:old": 5.0})
    # The main webhook's drain lingers; the health webhook has none.
    scripts.load(redis_conn, "drain_register")(keys=[keys.drain("main"), keys.drain_owner("main")], args=["t", 60_000])
    main = list(range(1, 1201))
    jobs = [AlertJob(i, f"new_tip alert {i}", keys.drain("main")) for i in main]
    jobs.append(AlertJob(5000, "health x", keys.drain("health")))
    assert len(jobs) == commit(redis_conn, stream=keys.fetched, group="g", acks=entries,
                               sorted_sets=[ZSetChange(keys.watched_events, (), {7: 1_900_000_000}),
                                            ZSetChange(keys.deferred_tips, ["1:old"], {"2:new": 9.0})],
                               queue=alerts_queue(redis_conn), jobs=jobs, retry_intervals=INTERVALS)
    assert redis_conn.xpending(keys.fetched, "g")["pending"] == 0
    assert redis_conn.zrange(keys.watched_events, 0, -1, withscores=True) == [(b"7", 1_900_000_000.0)]
    assert redis_conn.zrange(keys.deferred_tips, 0, -1, withscores=True) == [(b"2:new", 9.0)]
    assert queued(redis_conn) == [job_id(5000)]  # the health alert: a job
    # The main alerts: handed over, in order (the stream keeps about the newest thousand: a drain needs only
    # to see that something came), no job.
    handed = [fields[b"job"].decode() for _, fields in redis_conn.xrange(keys.drain("main"))]
    assert len(handed) >= 1000 and handed == [job_id(i) for i in main][-len(handed):]
    assert not redis_conn.exists(*(f"rq:job:{job_id(i)}" for i in main))


def test_a_batch_for_a_webhook_without_a_drain_tries_the_hand_over_once(redis_conn: redis.Redis,
                                                                         redis_url: str) -> None:
    drain = Keys("t-nodrain").drain("main")
    with CommandCounter(redis_url) as counter:
        with redis_conn.pipeline(transaction=False) as pipe:
            enqueue_alerts(pipe, alerts_queue(redis_conn), [AlertJob(i, None, drain) for i in range(1, 101)],
                           retry_intervals=INTERVALS)
            pipe.execute()
        commands = counter.stop()
    assert sorted(queued(redis_conn)) == sorted(job_id(i) for i in range(1, 101))
    # The script, one hand-over tried (no drain: nothing added, no stream made), then RQ's unique enqueue.
    assert commands["XADD"] == 1 and commands["EXISTS"] == commands["HSET"] == 100 and not redis_conn.exists(drain)
