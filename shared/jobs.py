"""Alert jobs on the RQ queue `alerts`: the arguments carry an alert id, never a webhook URL; the job's
description (what rq-dashboard shows) says which alert it is: kind, predictor, match."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

from shared.alerts import Alert, ConsensusAlert, DigestAlert, HealthAlert
from shared.keys import ALERTS_QUEUE
from shared.outbox import job_id

log = logging.getLogger(__name__)

DELIVER = "notifier.deliver.deliver_alert"
JOB_TIMEOUT = 900
# A job that failed every retry stays this long in RQ's failed registry, for `sofamon requeue`.
FAILURE_TTL = 30 * 24 * 3600


# A job description is one line of at most this many characters.
DESCRIPTION_MAX = 200


def alerts_queue(conn: redis.Redis) -> Queue:
    return Queue(ALERTS_QUEUE, connection=conn)


def describe(alert: Alert, event_id: int | None = None) -> str:
    """What an alert is about, in the words of the processor's log lines: `new_tip predictor=… match=A vs B`."""
    if isinstance(alert, HealthAlert):
        return f"health {alert.title}"
    if isinstance(alert, DigestAlert):
        return f"digest {alert.day}"
    event = event_id if event_id is not None else alert.match.event_id
    if isinstance(alert, ConsensusAlert):
        return f"consensus predictors={len(alert.members)} pick={alert.pick} match={alert.match.home} vs" \
            f" {alert.match.away} event={event}"
    return f"{alert.kind} predictor={alert.predictor.nickname} match={alert.match.home} vs {alert.match.away}" \
        f" event={event}"


def job_description(alert_id: int, description: str | None) -> str:
    """`alert 12: new_tip predictor=… match=…` on one line; `alert 12` without a description."""
    if not description:
        return f"alert {alert_id}"
    text = f"alert {alert_id}: {' '.join(description.split())}"
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"


def enqueue_alert(queue: Queue, alert_id: int, *, retry_intervals: Sequence[int],
                  description: str | None = None) -> bool:
    """Enqueue the delivery of an alert once; False when a job for it already exists.

    A job that finished is gone (result_ttl=0), so an alert that is still pending afterwards
    (its webhook was broken) can be enqueued again; a failed job waits for a requeue.
    After 5xx and timeouts the job is tried again after each of `retry_intervals` (the
    NOTIFIER_RETRY_INTERVALS setting; empty: no retry), then it stays in RQ's failed registry.
    `description` says what the alert is about (`describe`, or the processor's line for it): no secrets.
    """
    intervals = list(retry_intervals)
    try:
        queue.enqueue_call(
            DELIVER,
            args=(alert_id,),
            job_id=job_id(alert_id),
            description=job_description(alert_id, description),
            timeout=JOB_TIMEOUT,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            unique=True,
        )
    except DuplicateJobError:
        return False
    return True

