"""The notifier's RQ worker and retry scheduler, made to ride out what Redis does on a real machine.

RQ's own worker loop quits on most Redis errors ("found an unhandled exception, quitting...") and logs
every failed job with a traceback. `NotifierWorker` keeps RQ's pieces (dequeue, job execution, registries,
signals) but runs its own loop: when Redis goes away or refuses writes (OOM, READONLY, LOADING, ...) it
logs one line (`Outage`), waits until Redis accepts writes again, registers itself again if Redis came
back empty, gives the job it had in hand a fresh job, and goes on. Expected delivery failures are one
line, written by the job itself; a traceback means a bug.

`RetryScheduler` moves retries that are due from RQ's scheduled registry to the queue. It is RQ's
scheduler with a lock that lives `SCHEDULER_LOCK_TTL` seconds and is renewed at every tick (RQ's
lives 61 s), so when the notifier holding it dies another takes over within seconds.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.scripts import acquire_or_refresh_lock
from rq.utils import now as rq_now
from rq.worker import SimpleWorker, WorkerStatus

from notifier import liveness, sweeper
from notifier.context import NotifierContext
from notifier.deliver import DeliveryError, next_step
from shared.keys import ALERTS_QUEUE
from shared.logs import error_line
from shared.outbox import alert_id_of
from shared.redisconn import SENTINEL_BLOCK_SECONDS, through_sentinel, unavailable
from shared.storage import TRANSIENT_ERRORS

log = logging.getLogger("notifier")

# The worker's Redis TTL and blocking dequeue: short enough that a vanished worker is noticed.
WORKER_TTL = 120
# The loop's own heartbeat, when nothing else beat for this long: well inside the worker key's TTL (WORKER_TTL + 60).
LOOP_HEARTBEAT_SECONDS = 10.0
# While Redis is away: try again this often (a write, so that OOM and READONLY count as away too).
REDIS_RETRY_SECONDS = 1.0
# The scheduler lock's life; the scheduler renews it every tick (1 s).
SCHEDULER_LOCK_TTL = 5


class NotifierWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process: no fork per job) with a loop that waits out Redis."""

    def __init__(self, ctx: NotifierContext) -> None:
        self._short_block = through_sentinel(ctx.redis)  # read by dequeue_timeout, which RQ's __init__ asks for
        super().__init__([ctx.queue], connection=ctx.redis, worker_ttl=WORKER_TTL,
                         name=liveness.worker_name(ctx.owner))
        self.ctx = ctx
        self._interrupted: str | None = None  # the job in hand when Redis went away

    # -- the loop ---------------------------------------------------------------------------------------
    def work(self, burst: bool = False, **_: Any) -> bool:  # type: ignore[override]
        """Run jobs until a stop is requested (or, in a burst, until the queue is empty); True when any ran."""
        self._install_signal_handlers()
        ran = 0
        try:
            self._until_redis_accepts(self._register)
            self.subscribe()
            while not self._stop_requested and not self.ctx.stopping.is_set():
                try:
                    found = self._next_job(burst)
                    if found is None:
                        if burst:
                            break
                        continue
                    self._perform(*found)
                    ran += 1
                except Exception as error:
                    if not unavailable(error):
                        raise  # a bug: the process ends with a traceback, supervisord restarts it
                    self._until_redis_accepts(self._register, error)
                    self._replace_interrupted_job()
        except StopRequested:
            pass
        finally:
            self._teardown()
        return ran > 0

    def _next_job(self, burst: bool) -> tuple[Job, Queue] | None:
        if self.get_state() != WorkerStatus.IDLE:  # RQ's execute_job leaves it idle after each job
            self.set_state(WorkerStatus.IDLE)
        self._heartbeat_if_due()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        try:
            found = self.queue_class.dequeue_any(
                self._ordered_queues, None if burst else self.dequeue_timeout, connection=self.connection,
                job_class=self.job_class, serializer=self.serializer, death_penalty_class=self.death_penalty_class)
        except DequeueTimeout:
            found = None
        self.ctx.redis_outage.answered()
        if found is not None:
            self.reorder_queues(reference_queue=found[1])
        return found

    def _perform(self, job: Job, queue: Queue) -> None:
        try:
            self.execute_job(job, queue)
        except Exception as error:
            if unavailable(error):
                self._interrupted = job.id  # RQ could not record how it ended
            raise

    @property
    def dequeue_timeout(self) -> int:
        """RQ's (WORKER_TTL - 15 s); through Sentinel SENTINEL_BLOCK_SECONDS, so that after a failover the next
        dequeue, on a new connection, reaches the new master within seconds."""
        rqs = super().dequeue_timeout
        return min(rqs, SENTINEL_BLOCK_SECONDS) if self._short_block else rqs

    def _heartbeat_if_due(self) -> None:
        """RQ beats at every job it starts already, and the maintenance thread every NOTIFIER_HEARTBEAT_SECONDS:
        the loop beats only when neither did lately (three commands saved per job in a burst)."""
        last = self.last_heartbeat
        if last is None or (rq_now() - last).total_seconds() >= LOOP_HEARTBEAT_SECONDS:
            self.heartbeat()

    # -- Redis away ---------------------------------------------------------------------------------------
    def _until_redis_accepts(self, step: Callable[[], object], error: BaseException | None = None) -> None:
        """Run `step` (Redis writes) until Redis accepts it: one line when it is away, one when it is back."""
        while True:
            if error is not None:
                self.ctx.redis_outage.failed(error)
                if self.ctx.stopping.wait(REDIS_RETRY_SECONDS):
                    raise StopRequested()
            try:
                step()
            except Exception as failure:
                if not unavailable(failure):
                    raise
                error = failure
                continue
            self.ctx.redis_outage.answered()
            return

    def _register(self) -> None:
        """Register this worker (again, when Redis came back without its data) and say the notifier is alive."""
        if not self.connection.hexists(self.key, "birth"):
            self.connection.delete(self.key)
            self.register_birth()
            self.set_state(WorkerStatus.STARTED)
        liveness.beat(self.ctx)

    def _replace_interrupted_job(self) -> None:
        """The job in hand when Redis went away ended unrecorded: its alert gets a fresh job (if still due,
        the job delivers it; if it was delivered, the job finds it done)."""
        job_id, self._interrupted = self._interrupted, None
        if job_id is not None:
            self._until_redis_accepts(lambda: sweeper.replace_job(self.ctx, alert_id_of(job_id)))

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """RQ's command channel while Redis is away: quiet (the outage is logged once); redis-py resubscribes."""
        if unavailable(exc):
            self.ctx.redis_outage.failed(exc)
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def set_shutdown_requested_date(self) -> None:
        """Called from the SIGTERM handler: it must not raise into the job because Redis is away."""
        try:
            super().set_shutdown_requested_date()
        except redis.RedisError:
            pass

    def request_stop(self, signum: int, frame: Any) -> None:
        self.ctx.stopping.set()  # the job in hand finishes its message, then returns
        super().request_stop(signum, frame)

    def _teardown(self) -> None:
        try:
            self.register_death()
        except redis.RedisError:
            pass  # its key expires by itself
        if self.pubsub_thread is not None:
            try:
                self.pubsub.unsubscribe()
            except redis.RedisError:
                pass
            self.pubsub_thread.stop()  # even when Redis is away: the thread must not go on retrying
            self.pubsub_thread.join(timeout=1)

    # -- failed jobs: one line, tracebacks for bugs only ---------------------------------------------------
    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        error = exc_info[1]
        if isinstance(error, DeliveryError):
            pass  # the job logged the attempt, its reason and what happens next
        elif error is not None and (unavailable(error) or isinstance(error, TRANSIENT_ERRORS)):
            service = "database" if isinstance(error, TRANSIENT_ERRORS) else "Redis"
            log.warning("job %s interrupted: %s unavailable (%s); %s", job.id, service, error_line(error),
                        next_step(job))
        else:
            super().handle_exception(job, *exc_info)
            return
        call_exception_handlers(self._exc_handlers, job, *exc_info)


class RetryScheduler(RQScheduler):
    """RQ's scheduler for the `alerts` queue, run from the notifier's own loop, with a short-lived lock."""

    def __init__(self, conn: redis.Redis, owner: str) -> None:
        # The lock's value names the notifier holding it (`notifier:<host>:<pid>|<random>`).
        super().__init__([ALERTS_QUEUE], connection=conn, interval=1, name=f"{owner}|{uuid.uuid4().hex[:8]}")
        # The notifier's own client (it never forks a scheduler process), not RQ's copy built from its arguments:
        # through Sentinel, that pool is the one that follows the master (shared/redisconn.py).
        self._connection = conn

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        """Take or renew the lock of each queue (for SCHEDULER_LOCK_TTL); the queues whose lock is ours."""
        held = {name for name in self._queue_names
                if acquire_or_refresh_lock(self.connection, self.get_locking_key(name), self.name,
                                           SCHEDULER_LOCK_TTL) != "taken"}
        if held != self._acquired_locks:
            if held:
                log.info("scheduling retries of queue %s", ", ".join(sorted(held)))
            self._scheduled_job_registries = []
        self._acquired_locks = held
        self.lock_acquisition_time = datetime.now()
        return held

    def tick(self) -> None:
        """Move retries that are due to the queue, when this notifier holds the lock."""
        if self.acquire_locks():
            self.enqueue_scheduled_jobs()

    def stop(self) -> None:
        try:
            self.release_locks()
        except redis.RedisError:
            pass  # it expires within seconds

