"""`sofamon notify`: the notifier process, an RQ worker on the `alerts` queue.

It runs jobs in its own process (`notifier.worker.NotifierWorker`, RQ's SimpleWorker: no fork per
job, so no fork cost and supervisord's memmon sees the memory actually used). Retries RQ schedules
for later are moved to the queue by a scheduling thread (`RetryScheduler`, whose short-lived lock
lets one notifier do it and another take over within seconds when it dies). A thread of its own beats the
notifier's heartbeat (`liveness.beater`), in both modes; in the foreground mode a maintenance thread also
runs the sweeper (every NOTIFIER_SWEEP_SECONDS, or a quarter of the lease when shorter) and keeps the RQ
worker's key alive during long jobs.

Redis or the database away: every part waits and tries again, with one line when it goes and one
when it is back (`NotifierContext.redis_outage`, `.db_outage`); a start with Redis or the database
away waits too (a `--burst` run stops with one line and exit status 1 instead).
SIGTERM: the message in hand is finished, then the process exits 0; alerts left pending
get their job again from the sweeper.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import redis
from rq.registry import ScheduledJobRegistry

from notifier import context, health, lingering, liveness, sweeper
from notifier.context import NotifierContext
from notifier.worker import NotifierWorker, RetryScheduler
from shared import heartbeat
from shared.logs import error_line, setup_logging
from shared.redisconn import connect, unavailable
from shared.settings import Settings
from shared.storage import TRANSIENT_ERRORS, Database

log = logging.getLogger("notifier")

# The scheduling and maintenance threads wake this often: RQ's scheduler works in whole seconds.
TICK_SECONDS = 1.0


def _service_error(ctx: NotifierContext, error: BaseException) -> bool:
    """Tell the outage of the service behind `error`; False when it is no service error (a bug)."""
    if isinstance(error, TRANSIENT_ERRORS):
        ctx.db_outage.failed(error)
        return True
    if unavailable(error):
        ctx.redis_outage.failed(error)
        return True
    return False


def _next_scheduled(ctx: NotifierContext) -> float | None:
    registry = ScheduledJobRegistry(queue=ctx.queue)
    first = ctx.redis.zrange(registry.key, 0, 0, withscores=True)
    return float(first[0][1]) if first else None


def _burst(ctx: NotifierContext) -> int:
    """Work until the queue is empty and no retry is scheduled any more."""
    scheduler = RetryScheduler(ctx.redis, ctx.owner)
    beating = liveness.beater(ctx).start()
    try:
        while not ctx.stopping.is_set():
            worked = NotifierWorker(ctx).work(burst=True)
            if ctx.stopping.is_set():
                break
            due = _next_scheduled(ctx)
            if due is None:
                if ctx.queue.count == 0:
                    break
                if not worked:
                    log.error("the worker stopped with %d jobs queued", ctx.queue.count)
                    return 1
                continue
            # A retry waits in RQ's scheduled registry: sleep until it is due, then queue it.
            if ctx.stopping.wait(max(0.05, due - time.time())):
                break
            scheduler.tick()
    finally:
        scheduler.stop()
        beating.stop()  # done: gone from now on
    return 0


class _Scheduling(threading.Thread):
    """Moves due retries to the queue every second (lock holder only), whatever the other threads wait for."""

    def __init__(self, ctx: NotifierContext) -> None:
        super().__init__(name="notifier-scheduling", daemon=True)
        self.ctx = ctx
        self.done = threading.Event()
        self.scheduler = RetryScheduler(ctx.redis, ctx.owner)

    def run(self) -> None:
        while not self.done.is_set():
            try:
                # Its lock renewal (EXPIRE) passes where writes that need memory do not: that Redis answers
                # again is for the heartbeat's write to say (maintenance, worker).
                self.scheduler.tick()
            except Exception as error:  # noqa: BLE001 - the thread must survive anything
                if not _service_error(self.ctx, error):
                    log.error("scheduling failed: %s", error_line(error))
            self.done.wait(TICK_SECONDS)
        self.scheduler.stop()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


class _Maintenance(threading.Thread):
    """Sweeps beside the worker (own DB connection), and the RQ worker's own heartbeat; on a stop request, wakes
    a lingering drain."""

    def __init__(self, ctx: NotifierContext, worker: NotifierWorker) -> None:
        super().__init__(name="notifier-maintenance", daemon=True)
        self.ctx = ctx.for_thread()
        self.worker = worker
        self.done = threading.Event()

    def run(self) -> None:
        ctx, config = self.ctx, self.ctx.config
        sweep_every = min(config.sweep_seconds, config.timing.check_every)
        next_beat = next_sweep = time.monotonic()
        next_sweep += sweep_every  # the first sweep ran at start
        woken = False
        while not self.done.is_set():
            now = time.monotonic()
            try:
                if ctx.stopping.is_set() and not woken:
                    lingering.wake(ctx)  # a drain waiting for alerts ends its wait now, not seconds later
                    woken = True
                if now >= next_beat or ctx.redis_outage.away:
                    # SimpleWorker does not refresh its RQ key while a job runs; a long drain
                    # must not look like a dead worker to the sweepers of other notifiers.
                    if self.worker.birth_date is not None:
                        self.worker.heartbeat()
                        ctx.redis_outage.answered()
                    next_beat = now + config.heartbeat_seconds
                # Back from an outage: Redis may have lost the jobs of pending alerts; sweep at once.
                if ctx.redis_outage.recovered.is_set() or ctx.db_outage.recovered.is_set():
                    ctx.redis_outage.recovered.clear()
                    ctx.db_outage.recovered.clear()
                    next_sweep = now
                if now >= next_sweep or ctx.db_outage.away:
                    sweeper.sweep(ctx)
                    next_sweep = now + sweep_every
                    ctx.db_outage.answered()
            except Exception as error:  # noqa: BLE001 - the thread must survive anything
                if not _service_error(ctx, error):
                    log.error("maintenance failed: %s", error_line(error))
            self.done.wait(TICK_SECONDS)
        self.ctx.db.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def _forever(ctx: NotifierContext) -> int:
    worker = NotifierWorker(ctx)
    beating = liveness.beater(ctx)
    beating.on_beat = ctx.redis_outage.answered  # a write Redis took: it answers again
    beating.start()
    maintenance = _Maintenance(ctx, worker)
    scheduling = _Scheduling(ctx)
    maintenance.start()
    scheduling.start()
    try:
        health.notifier_started(ctx)
    except (*TRANSIENT_ERRORS, redis.RedisError) as error:
        log.warning("could not raise the start health alert: %s", error_line(error))
    log.info("notifier %s delivering alerts", ctx.owner)
    try:
        worker.work(burst=False)
    finally:
        ctx.stopping.set()
        scheduling.stop()
        maintenance.stop()
        beating.stop(clear_it=False)
        try:
            health.notifier_stopped(ctx)
            liveness.forget(ctx)
        except (*TRANSIENT_ERRORS, redis.RedisError) as error:
            log.warning("could not record the stop: %s", error_line(error))
    log.info("notifier %s stopped (%d messages, %d alerts, %d rate-limit answers)",
             ctx.owner, ctx.stats.messages, ctx.stats.alerts, ctx.stats.rate_limited)
    return 0


def _start(ctx: NotifierContext, burst: bool) -> bool:
    """Migrate and sweep once; in the foreground mode, waiting (one line) while Redis or the database is away.
    False when a stop was requested meanwhile."""
    while True:
        try:
            ctx.db.migrate()
            ctx.db_outage.answered()
            sweeper.sweep(ctx, at_start=True)
            ctx.redis_outage.answered()
            return True
        except Exception as error:
            if burst or not _service_error(ctx, error):
                raise
        if ctx.stopping.wait(TICK_SECONDS * 2):
            return False


def run(settings: Settings, burst: bool) -> int:
    """Deliver alerts: every queued one and exit (`burst`), or until SIGTERM."""
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level, logging.getLogger("rq.job").level)
    setup_logging(settings, "notifier")
    # RQ's job logger says "scheduled for retry" after each failed attempt: the job's own line says it.
    logging.getLogger("rq.job").setLevel(max(logging.WARNING, root.level))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    db = Database(settings.database_url)
    conn = connect(settings)
    # A burst ends once the queue is empty: its jobs do not linger for more.
    ctx = context.create(settings, db=db, conn=conn, linger=not burst)
    ctx.mode = heartbeat.BURST if burst else None
    if not burst and threading.current_thread() is threading.main_thread():
        # Until the worker installs RQ's handlers: a stop while waiting for Redis or the database.
        def stop(signum: int, frame: FrameType | None) -> None:
            ctx.stopping.set()

        for sig in handlers:
            signal.signal(sig, stop)
    try:
        if not _start(ctx, burst):
            return 0
        context.install(ctx)
        return _burst(ctx) if burst else _forever(ctx)
    except Exception as error:
        if not isinstance(error, TRANSIENT_ERRORS) and not unavailable(error):
            raise
        log.error("notifier stopped: %s unavailable (%s)", "database" if isinstance(error, TRANSIENT_ERRORS)
                  else "Redis", error_line(error))
        return 1
    finally:
        for sig, handler in handlers.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)
        context.reset()
        db.close()
        conn.close()
        # Run in-process (tests, tools): leave logging as it was found.
        root.handlers[:], level, rq_job_level = saved_logging
        root.setLevel(level)
        logging.getLogger("rq.job").setLevel(rq_job_level)
