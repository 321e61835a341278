"""Every deliverable alert has a live RQ job: the sweeper repairs what crashes left behind.

* no job (lost, or finished while its alert was left pending; Redis came back without its data)
  -> enqueue one;
* a STARTED job whose worker is gone (its notifier's heartbeat says so, wherever it ran: a kill -9, a host
  that died; or its RQ worker key expired), or a finished / stopped / canceled job record -> delete it and
  enqueue again;
* a QUEUED job that is in no queue (a stop signal right after RQ moved it to its intermediate
  list, before it started) -> the same, once a second look shows it still stranded;
* a FAILED job is left alone: operators requeue it, the alert waits in the outbox;
* alerts of a webhook with a live drain (`notifier.lingering`: they may have been handed to it, without a job)
  are left to it; a drain whose notifier is gone no longer counts, so what was handed to it gets jobs here.

It looks one by one only at alerts whose job may need one of these: a single read of the queue and its
registries (`jobqueue.snapshot`) settles every alert whose job waits in the queue or for a retry, or
failed. So a sweep costs a few Redis commands whatever the backlog, plus a few per job running or lost.

It also gives back alerts claimed by notifiers that are gone (by their heartbeat, whatever the host), and (at
start) forgets "broken" marks left for a webhook URL that is no longer configured. The notifier sweeps every
NOTIFIER_SWEEP_SECONDS or, when shorter, every `heartbeat.Timing.check_every` (a quarter of the lease), so
what a dead notifier held is handed over within the lease.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from notifier import jobqueue, lingering, webhooks
from notifier.context import NotifierContext
from notifier.liveness import owner_of_worker
from shared import outbox
from shared.jobs import describe, enqueue_alert
from shared.outbox import job_id
from shared.redisconn import unavailable
from shared.storage import TRANSIENT_ERRORS
from shared.webhooks import WEBHOOKS

log = logging.getLogger(__name__)

REPLACEABLE = frozenset({JobStatus.FINISHED, JobStatus.STOPPED, JobStatus.CANCELED})
WAITING = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
# A worker moves a job from the queue to its intermediate list and marks it started within milliseconds:
# a queued job found in no queue is looked at again after this long before it is replaced.
STRANDED_RECHECK = 0.5


def worker_alive(ctx: NotifierContext, worker_name: str | None) -> bool:
    """The RQ worker still exists: its key has not expired and, when it is a notifier's, that notifier is not gone
    (by its heartbeat: a worker key outlives a dead host by the job timeout)."""
    if not worker_name:
        return False
    owner = owner_of_worker(worker_name)
    if owner is not None and owner != ctx.owner and ctx.owner_dead(owner):
        return False
    return Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=ctx.redis) is not None


def _fetch(ctx: NotifierContext, alert_id: int) -> Job | None:
    try:
        return Job.fetch(job_id(alert_id), connection=ctx.redis)
    except NoSuchJobError:
        return None


def _stranded(ctx: NotifierContext, job: Job) -> bool:
    """Queued, yet in no queue: moved to RQ's intermediate list by a worker that stopped before starting it."""
    return job.get_status(refresh=False) == JobStatus.QUEUED and ctx.redis.lpos(ctx.queue.key, job.id) is None


def _enqueue(ctx: NotifierContext, alert_id: int) -> bool:
    """A job for the alert, described by its kind, predictor and match when the outbox can say (or a hand-over to
    its webhook's drain, should one have registered since the sweep looked)."""
    try:
        row = outbox.get(ctx.db, alert_id)
    except TRANSIENT_ERRORS:
        row = None  # the job is what matters; its description can do without
    description = describe(row.alert) if row is not None else None
    drain = ctx.keys.drain(row.webhook) if row is not None else None
    return enqueue_alert(ctx.queue, alert_id, retry_intervals=ctx.config.retry_intervals, description=description,
                         drain=drain)


def _delete(ctx: NotifierContext, job: Job) -> None:
    job.delete()
    ctx.redis.lrem(ctx.queue.intermediate_queue_key, 0, job.id)


def replace_job(ctx: NotifierContext, alert_id: int) -> None:
    """Whatever job record the alert has, a fresh job instead (after its job ended without being recorded)."""
    job = _fetch(ctx, alert_id)
    if job is not None:
        _delete(ctx, job)
    _enqueue(ctx, alert_id)


def ensure_job(ctx: NotifierContext, alert_id: int) -> str:
    """Make sure the alert has a job that will run; returns what was done ("stranded": look again soon)."""
    try:
        job = _fetch(ctx, alert_id)
    except Exception as error:  # noqa: BLE001 - an unreadable job record
        if unavailable(error):
            raise  # Redis is away: the sweep stops here and runs again later
        log.warning("alert %s: unreadable job record (%s), left alone", alert_id, type(error).__name__)
        return "unreadable"
    if job is not None:
        status = job.get_status(refresh=False)
        if status == JobStatus.FAILED:
            return "failed"
        if _stranded(ctx, job):
            return "stranded"
        if status in WAITING:
            return "waiting"
        if status == JobStatus.STARTED and worker_alive(ctx, job.worker_name):
            return "running"
        log.warning("alert %s: job %s was %s%s, enqueueing it again", alert_id, job.id,
                    status.value if status else "unknown",
                    " by a worker that is gone" if status == JobStatus.STARTED else "")
        _delete(ctx, job)
    if _enqueue(ctx, alert_id):
        return "enqueued" if job is None else "replaced"
    return "raced"


def requeue_if_stranded(ctx: NotifierContext, alert_id: int) -> str:
    """Second look at a job found stranded: still so -> a fresh job."""
    job = _fetch(ctx, alert_id)
    if job is None or not _stranded(ctx, job):
        return "waiting"
    log.warning("alert %s: job %s was queued but in no queue (its worker stopped before starting it),"
                " enqueueing it again", alert_id, job.id)
    replace_job(ctx, alert_id)
    return "requeued"


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
        if owner != ctx.owner and ctx.owner_dead(owner):
            count = outbox.release_owner(ctx.db, owner, "notifier died")
            if count:
                log.warning("released %d alerts claimed by dead notifier %s", count, owner)
            released += count
    return released


def _look_at(ctx: NotifierContext, jobs: jobqueue.Snapshot, alert_id: int) -> str:
    """What the alert's job needs: nothing when it waits or failed (seen in the snapshot, no command of its
    own); otherwise `ensure_job` looks at its record."""
    job = job_id(alert_id)
    if job in jobs.waiting:
        return "waiting"
    if job in jobs.failed:
        return "failed"
    return ensure_job(ctx, alert_id)


def sweep(ctx: NotifierContext, *, at_start: bool = False) -> Counter[str]:
    """One pass; returns how many alerts got each treatment."""
    report: Counter[str] = Counter()
    if at_start:
        report["cleared_broken"] = clear_stale_broken_marks(ctx)
    report["released"] = release_dead_owners(ctx)
    now = time.time()
    deliverable = {webhook: outbox.deliverable_ids(ctx.db, now, webhook) for webhook in WEBHOOKS}
    # Read after the outbox: the processor enqueues right after its commit, so the alerts read there have
    # their jobs by now (an alert whose job is missing from the snapshot all the same gets a closer look).
    jobs = jobqueue.snapshot(ctx.redis, ctx.queue)
    stranded = []
    for webhook, ids in deliverable.items():
        url = ctx.webhook_url(webhook)
        if ids and url is not None and webhooks.is_broken(ctx.redis, ctx.keys, webhook, url):
            report["broken"] += len(ids)
            continue
        if ids and lingering.live(ctx, webhook):
            report["draining"] += len(ids)  # the webhook's drain delivers them (it reads the outbox before leaving)
            continue
        for alert_id in ids:
            done = _look_at(ctx, jobs, alert_id)
            if done == "stranded":
                stranded.append(alert_id)
            else:
                report[done] += 1
    if stranded:
        ctx.stopping.wait(STRANDED_RECHECK)
        for alert_id in stranded:
            report[requeue_if_stranded(ctx, alert_id)] += 1
    fixed = {k: v for k, v in report.items() if v and k not in ("waiting", "running", "draining")}
    if fixed:
        log.info("sweep: %s", ", ".join(f"{k} {v}" for k, v in sorted(fixed.items())))
    return report
