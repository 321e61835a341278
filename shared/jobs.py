"""Alert jobs on the RQ queue `alerts`: the arguments carry an alert id, never a webhook URL."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

from shared.keys import ALERTS_QUEUE
from shared.outbox import job_id

log = logging.getLogger(__name__)

DELIVER = "notifier.deliver.deliver_alert"
JOB_TIMEOUT = 900
# A job that failed every retry stays this long in RQ's failed registry, for `rq requeue`.
FAILURE_TTL = 30 * 24 * 3600


def alerts_queue(conn: redis.Redis) -> Queue:
    return Queue(ALERTS_QUEUE, connection=conn)


def enqueue_alert(queue: Queue, alert_id: int, *, retry_intervals: Sequence[int]) -> bool:
    """Enqueue the delivery of an alert once; False when a job for it already exists.

    A job that finished is gone (result_ttl=0), so an alert that is still pending afterwards
    (its webhook was broken) can be enqueued again; a failed job waits for `rq requeue`.
    After 5xx and timeouts the job is tried again after each of `retry_intervals` (the
    NOTIFIER_RETRY_INTERVALS setting; empty: no retry), then it stays in RQ's failed registry.
    """
    intervals = list(retry_intervals)
    try:
        queue.enqueue_call(
            DELIVER,
            args=(alert_id,),
            job_id=job_id(alert_id),
            description=f"deliver alert {alert_id}",
            timeout=JOB_TIMEOUT,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            unique=True,
        )
    except DuplicateJobError:
        return False
    return True

