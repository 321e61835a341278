"""Every deliverable alert has a live RQ job: the sweeper repairs what crashes left behind.

* no job (lost, or finished while its alert was left pending) -> enqueue one;
* a STARTED job whose worker is gone (kill -9), or a finished / stopped / canceled job
  record -> delete it and enqueue again;
* a FAILED job is left alone: operators requeue it (`rq requeue`), the alert waits in the outbox.

It also gives back alerts claimed by notifier processes of this host that died, and (at
start) forgets "broken" marks left for a webhook URL that is no longer configured.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from notifier import webhooks
from notifier.context import NotifierContext
from notifier.liveness import owner_dead, worker_dead
from shared import outbox
from shared.jobs import enqueue_alert
from shared.outbox import job_id
from shared.webhooks import WEBHOOKS

log = logging.getLogger(__name__)

REPLACEABLE = frozenset({JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.CANCELED})
WAITING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})


def worker_alive(ctx: NotifierContext, worker_name: str | None) -> bool:
    """The RQ worker still exists: its key has not expired and, on this host, its process runs."""
    if not worker_name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=ctx.redis)
    if worker is None:
        return False
    return not worker_dead(worker.hostname, worker.pid)


def ensure_job(ctx: NotifierContext, alert_id: int) -> str:
    """Make sure the alert has a job that will run; returns what was done."""
    try:
        job = Job.fetch(job_id(alert_id), connection=ctx.redis)
    except NoSuchJobError:
        job = None
    except Exception as error:  # noqa: BLE001 - an unreadable job record
        log.warning("alert %s: unreadable job record (%s), left alone", alert_id, type(error).__name__)
        return "unreadable"
    if job is not None:
        status = job.get_status(refresh=False)
        if status == JobStatus.FAILED:
            return "failed"
        if status in WAITING:
            return "waiting"
        if status == JobStatus.STARTED and worker_alive(ctx, job.worker_name):
            return "running"
        log.warning("alert %s: job %s was %s%s, enqueueing it again", alert_id, job.id,
                    status.value if status else "unknown",
                    " by a worker that is gone" if status == JobStatus.STARTED else "")
        job.delete()
    if enqueue_alert(ctx.queue, alert_id, retry_intervals=ctx.config.retry_intervals):
        return "enqueued" if job is None else "replaced"
    return "raced"


def clear_stale_broken_marks(ctx: NotifierContext) -> int:
    """Forget broken marks of webhooks whose URL changed (or was removed) since."""
    cleared = 0
    for webhook, marked in webhooks.broken_webhooks(ctx.redis, ctx.keys).items():
        url = ctx.webhook_url(webhook)
        if url is None or webhooks.fingerprint(url) != marked:
            webhooks.clear(ctx.redis, ctx.keys, webhook, marked)
            cleared += 1
        else:
            log.warning("webhook %s is still marked broken (fingerprint %s): its alerts stay pending", webhook, marked)
    return cleared


def release_dead_owners(ctx: NotifierContext) -> int:
    released = 0
    for owner in outbox.lease_owners(ctx.db):
        if owner != ctx.owner and owner_dead(owner):
            count = outbox.release_owner(ctx.db, owner, "notifier died")
            if count:
                log.warning("released %d alerts claimed by dead notifier %s", count, owner)
            released += count
    return released


def sweep(ctx: NotifierContext, *, at_start: bool = False) -> Counter[str]:
    """One pass; returns how many alerts got each treatment."""
    report: Counter[str] = Counter()
    if at_start:
        report["cleared_broken"] = clear_stale_broken_marks(ctx)
    report["released"] = release_dead_owners(ctx)
    now = time.time()
    for webhook in WEBHOOKS:
        ids = outbox.deliverable_ids(ctx.db, now, webhook)
        url = ctx.webhook_url(webhook)
        if ids and url is not None and webhooks.is_broken(ctx.redis, ctx.keys, webhook, url):
            report["broken"] += len(ids)
            continue
        for alert_id in ids:
            report[ensure_job(ctx, alert_id)] += 1
    fixed = {k: v for k, v in report.items() if v and k not in ("waiting", "running")}
    if fixed:
        log.info("sweep: %s", ", ".join(f"{k} {v}" for k, v in sorted(fixed.items())))
    return report
