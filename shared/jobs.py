"""Alert jobs on the RQ queue `alerts`: the arguments carry an alert id, never a webhook URL; the job's
description (what rq-dashboard shows) says which alert it is: kind, predictor, match.

One job per alert, ever at once: its id is `alert-<id>` and it is written only when no job of that id
exists (RQ's unique enqueue), checked and written in one script run so two processes cannot both write it.
While a webhook's drain lingers (`notifier.lingering`: the RQ job holding the webhook's lock, waiting for
more), its new alerts are handed to it instead, in the same script run: no job of their own.
The processor enqueues all the alerts of a batch of entries in the script call that ends the batch
(`processor/commit.py`); `enqueue_alert(s)` enqueue on their own.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

from shared import scripts
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


@dataclass(frozen=True)
class AlertJob:
    """An alert to deliver, what it is about (its job's description: no secrets), and the drain stream of its
    webhook (`Keys.drain`): where it goes instead of a job while that webhook's drain lingers (None: a job)."""

    alert_id: int
    description: str | None = None
    drain: str | None = None


def enqueue_alert(queue: Queue, alert_id: int, *, retry_intervals: Sequence[int],
                  description: str | None = None, drain: str | None = None) -> bool:
    """Enqueue the delivery of an alert once; False when a job for it already exists.

    A job that finished is gone (result_ttl=0), so an alert that is still pending afterwards
    (its webhook was broken) can be enqueued again; a failed job waits for a requeue.
    After 5xx and timeouts the job is tried again after each of `retry_intervals` (the
    NOTIFIER_RETRY_INTERVALS setting; empty: no retry), then it stays in RQ's failed registry.
    `description` says what the alert is about (`describe`, or the processor's line for it): no secrets.
    With `drain` (its webhook's `Keys.drain`), the alert is handed to that webhook's lingering drain instead
    when one is registered (True): the drain delivers it, no job is written.
    """
    (keys, args), = script_calls(queue, [AlertJob(alert_id, description, drain)], retry_intervals)
    return bool(queue.connection.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args))


def enqueue_alerts(pipe: redis.client.Pipeline, queue: Queue, jobs: Sequence[AlertJob], *,
                   retry_intervals: Sequence[int]) -> None:
    """`enqueue_alert` for many alerts, added to `pipe`: one command per `JOBS_PER_CALL` jobs.

    Each alert gets a job unless one of its id exists (or goes to its webhook's lingering drain). The caller's
    pipeline decides when it runs.
    """
    for keys, args in script_calls(queue, jobs, retry_intervals):
        pipe.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args)


# Jobs per script call: Lua's unpack() of the ids pushed at once is bounded by its stack (about 8,000).
JOBS_PER_CALL = 500

# `shared/lua/jobs.lua` (its `enqueue`: hand each alert to its webhook's lingering drain, or write RQ's unique
# job) run on the whole call. Sent whole each time (EVAL, not EVALSHA): no extra round trip to check that
# Redis still has it. Other scripts start with jobs.lua too (`processor/lua/commit.lua`).
JOBS_LUA = scripts.source("shared", "jobs")
ENQUEUE_SCRIPT = JOBS_LUA + scripts.source("shared", "enqueue")


def script_calls(queue: Queue, jobs: Sequence[AlertJob],
                 retry_intervals: Sequence[int]) -> list[tuple[list[str], list[object]]]:
    """(KEYS, ARGV) of each call of jobs.lua's `enqueue` that enqueues these jobs (at least one call: with no
    jobs, a call that does nothing).

    One RQ job is made and pointed at each alert in turn (RQ's setters of id and args): making one per
    alert would cost more than the rest of the enqueueing. Only the fields that differ from job to job
    (id, arguments, description) are sent per job.
    """
    intervals = list(retry_intervals)
    rq_job = queue.create_job(DELIVER, args=(0,), timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=FAILURE_TTL,
                              retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                              status=JobStatus.QUEUED)
    # As RQ's enqueue sets them.
    rq_job.origin = queue.name
    rq_job.enqueued_at = datetime.now(timezone.utc)
    common = _hash_fields(rq_job)
    calls = []
    for first in range(0, max(1, len(jobs)), JOBS_PER_CALL):
        chunk = jobs[first:first + JOBS_PER_CALL]
        drains = list(dict.fromkeys(job.drain for job in chunk if job.drain))
        keys: list[str] = [queue.key, queue.redis_queues_keys, *drains]
        args: list[object] = [queue.key, len(common), *_flat(common), len(drains)]
        for job in chunk:
            rq_job.id = job_id(job.alert_id)
            rq_job.args = (job.alert_id,)
            rq_job.description = job_description(job.alert_id, job.description)
            own = {name: value for name, value in _hash_fields(rq_job).items() if common.get(name) != value}
            keys.append(rq_job.key)
            args += [rq_job.id, drains.index(job.drain) + 1 if job.drain else 0, len(own), *_flat(own)]
        calls.append((keys, args))
    return calls


def _hash_fields(job: Job) -> dict[str, bytes | str]:
    """The job's hash as RQ's unique enqueue writes it: `Job.to_dict`, None values left out, others as text
    (a status is a str enum: written as its value)."""
    return {name: value if isinstance(value, (bytes, str)) else str(value)
            for name, value in job.to_dict().items() if value is not None}


def _flat(fields: dict[str, bytes | str]) -> list[bytes | str]:
    return [item for pair in fields.items() for item in pair]
