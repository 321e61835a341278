"""RQ's `alerts` queue seen from the notifier: which alerts' jobs are sure to run, and dropping the jobs that
wait for alerts already delivered.

A message carries up to 10 alerts, and each of them has its job. Once the message is posted the other
jobs have nothing left to do, yet each would cost RQ's whole job cycle (48 Redis commands: dequeue,
execution records, registries, clean-up). `drop_waiting` removes those still waiting in the queue, all in
one round trip (`notifier/lua/unqueue.lua`), so they never run; one a worker took already runs and finds
its alert done in the outbox.

`snapshot` reads, in one round trip, the jobs that wait in the queue or for a retry, and the failed ones:
the sweeper looks one by one only at alerts whose job is in neither (running, lost, stranded), instead of
at every pending alert.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from notifier import scripts
from shared.outbox import job_id
from shared.redisconn import text


def drop_waiting(conn: redis.Redis, queue: Queue, alert_ids: Iterable[int]) -> int:
    """Drop the jobs of these alerts that still wait in the queue (their alerts are done); how many."""
    ids = [job_id(alert_id) for alert_id in alert_ids]
    if not ids:
        return 0
    keys = [queue.key, *(Job.key_for(job) for job in ids)]
    return int(scripts.load(conn, "unqueue")(keys=keys, args=ids))


@dataclass(frozen=True)
class Snapshot:
    """Job ids of the queue at one moment."""

    waiting: frozenset[str]  # in the queue, or scheduled for a retry: they will run
    failed: frozenset[str]  # in the failed registry: left to operators (`sofamon requeue`)


def snapshot(conn: redis.Redis, queue: Queue) -> Snapshot:
    """The queue's waiting and failed jobs, read in one transaction (one consistent view)."""
    with conn.pipeline(transaction=True) as pipe:
        pipe.lrange(queue.key, 0, -1)
        pipe.zrange(ScheduledJobRegistry(queue=queue).key, 0, -1)
        pipe.zrange(FailedJobRegistry(queue=queue).key, 0, -1)
        queued, scheduled, failed = pipe.execute()
    return Snapshot(waiting=frozenset(text(v) for v in (*queued, *scheduled)),
                    failed=frozenset(text(v) for v in failed))
