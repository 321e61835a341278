"""`sofamon requeue`: give failed delivery jobs another go, on the project's own Redis and db.

`rq requeue` needs the venv on PATH and its own `-u URL` (db 0 unless told otherwise); this works on the
connection every process uses (REDIS_URL). A job ends in RQ's failed registry after its last retry
(`NOTIFIER_RETRY_INTERVALS`); its alert stays pending in the outbox. Requeued, it gets its whole retry
schedule again, so one more hiccup of Discord's does not put it straight back.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from shared import console
from shared.jobs import alerts_queue
from shared.keys import ALERTS_QUEUE
from shared.outbox import alert_id_of, job_id
from shared.redisconn import connect
from shared.settings import Settings


@dataclass
class Requeued:
    done: list[str] = field(default_factory=list)  # job ids back on the queue
    gone: list[str] = field(default_factory=list)  # listed as failed, but the job itself expired


def _requeue_one(registry: FailedJobRegistry, job_ref: str) -> bool:
    """Back on its queue with its retries restored; False when the job's data is gone (then unlisted)."""
    try:
        job = Job.fetch(job_ref, connection=registry.connection)
    except NoSuchJobError:
        registry.remove(job_ref)  # a job without data cannot run; the notifier's sweeper gives its alert a new one
        return False
    if job.retry_intervals:
        job.retries_left = len(job.retry_intervals)
    registry.requeue(job)
    return True


def requeue(conn: redis.Redis, job_ids: list[str] | None = None) -> Requeued:
    """Requeue the given failed jobs (all of them when None)."""
    registry = FailedJobRegistry(queue=alerts_queue(conn))
    result = Requeued()
    for job_ref in job_ids if job_ids is not None else registry.get_job_ids():
        try:
            (result.done if _requeue_one(registry, job_ref) else result.gone).append(job_ref)
        except InvalidJobOperation:
            pass  # requeued meanwhile by someone else: nothing left to do
    return result


def _not_failed(conn: redis.Redis, alert_id: int) -> str:
    """Why an alert has no failed job: where its job is, if anywhere."""
    try:
        status = Job.fetch(job_id(alert_id), connection=conn).get_status()
    except NoSuchJobError:
        return f"alert {alert_id} has no delivery job (delivered, or waiting for the notifier's sweeper)"
    return f"alert {alert_id} has no failed delivery job (its job is {status})"


def _names(ids: list[str]) -> str:
    return ", ".join(str(alert_id_of(i)) if i.startswith("alert-") else i for i in ids)


def run(settings: Settings, alert_id: int | None = None, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    conn = connect(settings, socket_timeout=30)
    try:
        if alert_id is not None and job_id(alert_id) not in FailedJobRegistry(queue=alerts_queue(conn)):
            console.show(f"sofamon requeue: {_not_failed(conn, alert_id)}", sys.stderr)
            return 1
        result = requeue(conn, [job_id(alert_id)] if alert_id is not None else None)
    finally:
        conn.close()
    lines = []
    if result.done:
        lines.append(f"re-queued {len(result.done)} failed delivery job(s) on queue {ALERTS_QUEUE}"
                     f" (alert {_names(result.done)}); a running notifier delivers them")
    if result.gone:
        lines.append(f"{len(result.gone)} failed job(s) had expired (alert {_names(result.gone)}): removed;"
                     " the notifier's sweeper gives their pending alerts new jobs")
    if not lines:
        lines.append(f"no failed delivery jobs on queue {ALERTS_QUEUE}")
    console.show("\n".join(lines), out)
    return 0
