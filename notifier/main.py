"""`sofamon notify`: the notifier process, an RQ worker on the `alerts` queue.

It runs jobs in its own process (RQ's SimpleWorker: no fork per job, so no fork cost and
supervisord's memmon sees the memory actually used). Retries RQ schedules for later are
moved to the queue by an in-process scheduler (RQ's, with its lock, so one notifier does it).
In the foreground mode a maintenance thread also beats the heartbeat and runs the sweeper.
SIGTERM: the message in hand is finished, then the process exits 0; alerts left pending
get their job again from the sweeper.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

import redis
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker

from notifier import context, health, liveness, sweeper
from notifier.context import NotifierContext
from shared.keys import ALERTS_QUEUE
from shared.logs import setup_logging
from shared.redisconn import REDIS_ERRORS, connect
from shared.settings import Settings
from shared.storage import TRANSIENT_ERRORS, Database

log = logging.getLogger("notifier")

# The worker's Redis TTL and blocking dequeue: short enough that a vanished worker is noticed.
WORKER_TTL = 120
# The maintenance thread wakes this often: RQ's scheduler works in whole seconds.
SCHEDULER_SECONDS = 1.0


class NotifierWorker(SimpleWorker):
    """SimpleWorker that tells the running job when a stop was requested (SIGTERM/SIGINT)."""

    stopping: threading.Event | None = None

    def request_stop(self, signum: int, frame: Any) -> None:
        if self.stopping is not None:
            self.stopping.set()
        super().request_stop(signum, frame)


class InlineScheduler:
    """RQ's scheduler run from our own loop (no forked scheduler process)."""

    def __init__(self, conn: redis.Redis) -> None:
        self._scheduler = RQScheduler([ALERTS_QUEUE], connection=conn, interval=1)

    def tick(self) -> None:
        """Move retries that are due from the scheduled registry to the queue (lock holder only)."""
        if self._scheduler.acquire_locks():
            self._scheduler.enqueue_scheduled_jobs()

    def stop(self) -> None:
        try:
            self._scheduler.release_locks()
        except REDIS_ERRORS:
            pass


def _new_worker(ctx: NotifierContext) -> NotifierWorker:
    worker = NotifierWorker([ctx.queue], connection=ctx.redis, worker_ttl=WORKER_TTL,
                            name=liveness.worker_name(ctx.owner))
    worker.stopping = ctx.stopping
    return worker


def _next_scheduled(ctx: NotifierContext) -> float | None:
    registry = ScheduledJobRegistry(queue=ctx.queue)
    first = ctx.redis.zrange(registry.key, 0, 0, withscores=True)
    return float(first[0][1]) if first else None


def _burst(ctx: NotifierContext) -> int:
    """Work until the queue is empty and no retry is scheduled any more."""
    scheduler = InlineScheduler(ctx.redis)
    try:
        while not ctx.stopping.is_set():
            worked = _new_worker(ctx).work(burst=True)
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
    return 0


class _Maintenance(threading.Thread):
    """Scheduler ticks, heartbeats and sweeps beside the worker (own DB connection)."""

    def __init__(self, ctx: NotifierContext, worker: NotifierWorker) -> None:
        super().__init__(name="notifier-maintenance", daemon=True)
        self.ctx = ctx.for_thread()
        self.worker = worker
        self.done = threading.Event()
        self.scheduler = InlineScheduler(self.ctx.redis)

    def run(self) -> None:
        ctx, config = self.ctx, self.ctx.config
        next_beat = next_sweep = time.monotonic()
        next_sweep += config.sweep_seconds  # the first sweep ran at start
        failing = False  # one line when Redis or the database goes away, one when it is back
        while not self.done.is_set():
            now = time.monotonic()
            try:
                self.scheduler.tick()
                if now >= next_beat:
                    liveness.beat(ctx)
                    # SimpleWorker does not refresh its RQ key while a job runs; a long drain
                    # must not look like a dead worker to the sweepers of other notifiers.
                    if self.worker.birth_date is not None:
                        self.worker.heartbeat()
                    next_beat = now + config.heartbeat_seconds
                if now >= next_sweep:
                    sweeper.sweep(ctx)
                    next_sweep = now + config.sweep_seconds
                if failing:
                    log.info("maintenance: Redis and the database answer again")
                    failing = False
            except (*REDIS_ERRORS, *TRANSIENT_ERRORS) as error:
                if not failing:
                    log.warning("maintenance: %s, trying again every %.0f s", type(error).__name__,
                                SCHEDULER_SECONDS)
                failing = True
            except Exception as error:  # noqa: BLE001 - the thread must survive anything
                log.error("maintenance failed: %s", type(error).__name__)
            self.done.wait(SCHEDULER_SECONDS)
        self.scheduler.stop()
        self.ctx.db.close()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def _forever(ctx: NotifierContext) -> int:
    worker = _new_worker(ctx)
    maintenance = _Maintenance(ctx, worker)
    maintenance.start()
    health.notifier_started(ctx)
    log.info("notifier %s delivering alerts", ctx.owner)
    try:
        worker.work(burst=False)
    finally:
        ctx.stopping.set()
        maintenance.stop()
        try:
            health.notifier_stopped(ctx)
            liveness.forget(ctx)
        except (*REDIS_ERRORS, *TRANSIENT_ERRORS) as error:
            log.warning("could not record the stop: %s", type(error).__name__)
    log.info("notifier %s stopped (%d messages, %d alerts, %d rate-limit answers)",
             ctx.owner, ctx.stats.messages, ctx.stats.alerts, ctx.stats.rate_limited)
    return 0


def run(settings: Settings, burst: bool) -> int:
    """Deliver alerts: every queued one and exit (`burst`), or until SIGTERM."""
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    setup_logging(settings, "notifier")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    db = Database(settings.database_url)
    conn = connect(settings)
    try:
        db.migrate()
        ctx = context.create(settings, db=db, conn=conn)
        context.install(ctx)
        sweeper.sweep(ctx, at_start=True)
        return _burst(ctx) if burst else _forever(ctx)
    except (*REDIS_ERRORS, *TRANSIENT_ERRORS) as error:
        log.error("notifier stopped: %s unavailable (%s)", "Redis" if isinstance(error, REDIS_ERRORS) else
                  "database", type(error).__name__)
        return 1
    finally:
        for sig, handler in handlers.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)
        context.reset()
        db.close()
        conn.close()
        # Run in-process (tests, tools): leave logging as it was found.
        root.handlers[:], level = saved_logging
        root.setLevel(level)
