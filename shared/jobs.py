"""Alert jobs on the RQ queue `alerts`: the arguments carry an alert id, never a webhook URL; the job's
description (what rq-dashboard shows) says which alert it is: kind, predictor, match.

One job per alert, ever at once: its id is `alert-<id>` and it is written only when no job of that id
exists (RQ's unique enqueue), checked and written in one script run so two processes cannot both write it.
The processor enqueues all the alerts of a batch of entries in one script call (`enqueue_alerts`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus

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
    """An alert to deliver, and what it is about (its job's description: no secrets)."""

    alert_id: int
    description: str | None = None


def enqueue_alert(queue: Queue, alert_id: int, *, retry_intervals: Sequence[int],
                  description: str | None = None) -> bool:
    """Enqueue the delivery of an alert once; False when a job for it already exists.

    A job that finished is gone (result_ttl=0), so an alert that is still pending afterwards
    (its webhook was broken) can be enqueued again; a failed job waits for a requeue.
    After 5xx and timeouts the job is tried again after each of `retry_intervals` (the
    NOTIFIER_RETRY_INTERVALS setting; empty: no retry), then it stays in RQ's failed registry.
    `description` says what the alert is about (`describe`, or the processor's line for it): no secrets.
    """
    (keys, args), = _script_calls(queue, [AlertJob(alert_id, description)], retry_intervals)
    return bool(queue.connection.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args))


def enqueue_alerts(pipe: redis.client.Pipeline, queue: Queue, jobs: Sequence[AlertJob], *,
                   retry_intervals: Sequence[int]) -> None:
    """`enqueue_alert` for many alerts, added to `pipe`: one command per `JOBS_PER_CALL` jobs.

    Each alert gets a job unless one of its id exists. The caller's pipeline decides when it runs (with
    the rest of the transaction, e.g. the acknowledgement of the entries the alerts came from).
    """
    for keys, args in _script_calls(queue, jobs, retry_intervals):
        pipe.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args)


# Jobs per script call: Lua's unpack() of the ids pushed at once is bounded by its stack (about 8,000).
JOBS_PER_CALL = 500

# RQ's unique enqueue (what `enqueue_call(unique=True)` runs for one job: EXISTS, HSET, RPUSH) for many jobs.
# KEYS: the queue's list, RQ's set of queues, then the hash of each job.
# ARGV: the queue's key (its member in RQ's set of queues); the number s of fields all the jobs share and
# those s field/value pairs; then for each job its id, the number n of its own fields and n field/value
# pairs. Returns how many jobs it wrote (those whose id had no job yet).
# Sent whole each time (EVAL, not EVALSHA): no extra round trip to check that Redis still has it.
ENQUEUE_SCRIPT = """
local s = tonumber(ARGV[2])
local enqueued = {}
local at = 3 + 2 * s
for k = 3, #KEYS do
  local n = tonumber(ARGV[at + 1])
  if redis.call('EXISTS', KEYS[k]) == 0 then
    local fields = {unpack(ARGV, 3, 2 + 2 * s)}
    for i = at + 2, at + 1 + 2 * n do fields[#fields + 1] = ARGV[i] end
    redis.call('HSET', KEYS[k], unpack(fields))
    enqueued[#enqueued + 1] = ARGV[at]
  end
  at = at + 2 + 2 * n
end
if #enqueued > 0 then
  redis.call('RPUSH', KEYS[1], unpack(enqueued))
  redis.call('SADD', KEYS[2], ARGV[1])
end
return #enqueued
"""


def _script_calls(queue: Queue, jobs: Sequence[AlertJob],
                  retry_intervals: Sequence[int]) -> list[tuple[list[str], list[object]]]:
    """(KEYS, ARGV) of each `ENQUEUE_SCRIPT` call that enqueues these jobs.

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
    for first in range(0, len(jobs), JOBS_PER_CALL):
        keys: list[str] = [queue.key, queue.redis_queues_keys]
        args: list[object] = [queue.key, len(common), *_flat(common)]
        for job in jobs[first:first + JOBS_PER_CALL]:
            rq_job.id = job_id(job.alert_id)
            rq_job.args = (job.alert_id,)
            rq_job.description = job_description(job.alert_id, job.description)
            own = {name: value for name, value in _hash_fields(rq_job).items() if common.get(name) != value}
            keys.append(rq_job.key)
            args += [rq_job.id, len(own), *_flat(own)]
        calls.append((keys, args))
    return calls


def _hash_fields(job: Job) -> dict[str, bytes | str]:
    """The job's hash as RQ's unique enqueue writes it: `Job.to_dict`, None values left out, others as text
    (a status is a str enum: written as its value)."""
    return {name: value if isinstance(value, (bytes, str)) else str(value)
            for name, value in job.to_dict().items() if value is not None}


def _flat(fields: dict[str, bytes | str]) -> list[bytes | str]:
    return [item for pair in fields.items() for item in pair]
