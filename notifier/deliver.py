"""The RQ job: `deliver_alert(alert_id)` posts pending alerts of one webhook to Discord.

A job does not post only its own alert: it takes the webhook's lock and drains the
webhook's oldest deliverable alerts, up to 10 per message, until its own alert is done, and
then on while more wait (for at most `DRAIN_ON_SECONDS`, and only while Discord takes them).
So alerts go out oldest first and in few messages, whatever the number of notifier processes.

Cheap per alert: once a message is posted, the jobs of its other alerts that still wait in the
queue are dropped in the same step (`jobqueue.drop_waiting`, one round trip): they never run. A
job that a worker had already taken finds its alert done in the outbox and returns (no Redis
command of its own). Going on past its own alert keeps one job draining a backlog, instead of
one job per message plus one per notifier waiting for the lock.

Sent means sent. `outbox.mark_sent` runs right after Discord accepted a message, nothing in
between. When the database is away then, the job keeps the alerts claimed and the webhook's
lock and keeps trying (`_record_sent`) for as long as it takes, through a stop request or the
job's timeout: it never releases alerts whose message may have been posted, and while it holds
the lock no other notifier can claim them, whatever their lease says.

The windows that remain (Discord offers no idempotency key for webhooks), each counted by kind
in `outbox.possible_duplicates` for `sofamon status`:
* the process dies (kill -9, the OOM killer, power loss) after Discord posted a message and
  before its sent state is committed: the alerts stay claimed ("sending") until their lease
  runs out, or at once when a notifier on the same host sees the claimer is gone, and are
  posted again (NOTIFIER_DIED; LEASE_EXPIRED when nobody could tell it died);
* a timeout: Discord may have posted a message whose answer never came; the alerts are
  retried and may appear twice (TIMED_OUT);
* Redis lost the webhook's lock while the database was away too, and another notifier took
  the alerts once their lease ran out: the posted message is not recorded over the other's
  claim, and its alerts go out twice (CLAIM_LOST, logged as an error).

Every failed attempt is one log line: the alerts, the reason (Discord's status and error, a page
not from Discord, a timeout) and what happens next (the retry, or the failed registry).
"""
from __future__ import annotations

import logging
import time

import redis
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from notifier import context, discord, health, jobqueue, lingering, webhooks
from notifier.context import NotifierContext
from notifier.drytext import render_text
from notifier.limits import EMBEDS_PER_MESSAGE, pack
from notifier.lock import WebhookLock
from notifier.render import render
from shared import outbox
from shared.jobs import AlertJob, describe, enqueue_alerts
from shared.logs import error_line
from shared.outbox import CLAIM_LOST, DEAD, DRY_RUN, FAILED, SENT, TIMED_OUT
from shared.storage import TRANSIENT_ERRORS
from shared.webhooks import HEALTH_WEBHOOK, WEBHOOKS

log = logging.getLogger(__name__)

DONE_STATES = frozenset({SENT, DRY_RUN, FAILED, DEAD})
# While another notifier holds the webhook's lock: look again this often whether our alert is done.
LOCK_POLL = 0.2
# Recording a posted message while the database is away: the first and the longest pause between tries.
RECORD_WAIT = (0.5, 2.0)
# While the database is away otherwise: try again this often.
DB_RETRY_SECONDS = 1.0
# Once its own alert is done, a job goes on sending the webhook's backlog for at most this long: far from the
# job's timeout (shared.jobs.JOB_TIMEOUT), and the jobs of what is left still wait in the queue.
DRAIN_ON_SECONDS = 60.0
# A job lingering as its webhook's drain (notifier.lingering) leaves at the latest this long after it started,
# giving what is left jobs: far from the job's timeout, and RQ's cycle is then paid once per this long at most.
DRAIN_LIFETIME_SECONDS = 300.0
# A lingering drain waits for new alerts this long at a time at most, then looks at its time, its idleness and
# the queue (a stop request wakes it at once: notifier.main's maintenance thread, `lingering.wake`).
WAIT_SLICE_SECONDS = 5.0
# ...whether jobs wait in the queue, at most this often; found waiting twice in a row, no worker is free for
# them (an idle one takes a job within milliseconds): the drain leaves, its worker goes to them.
QUEUE_LOOK_SECONDS = 5.0


class DeliveryError(Exception):
    """Discord could not be reached or failed (5xx, timeout): RQ retries the job later.

    Its text is safe to store and log: it never contains the webhook URL.
    """


def deliver_alert(alert_id: int) -> str:
    """Deliver an alert (and the older ones of its webhook); returns what happened.

    Returns without raising when the alert is already done, its webhook is broken (the alert
    stays pending) or Discord refused it; raises DeliveryError on 5xx/timeouts so RQ retries.
    While the database is away it waits (one line) and starts over: a database outage costs no retry.
    """
    ctx = context.get()
    while True:
        try:
            return _deliver(ctx, alert_id)
        except TRANSIENT_ERRORS as error:
            ctx.db_outage.failed(error)
            if not _until_database_answers(ctx):
                return "stopping"


def _until_database_answers(ctx: NotifierContext) -> bool:
    """Wait until the database answers again (True), or a stop was requested (False)."""
    while not ctx.stopping.wait(DB_RETRY_SECONDS):
        try:
            with ctx.db.tx() as tx:
                tx.one("SELECT 1")
        except TRANSIENT_ERRORS as error:
            ctx.db_outage.failed(error)
            continue
        ctx.db_outage.answered()
        return True
    return False


def _deliver(ctx: NotifierContext, alert_id: int) -> str:
    row = outbox.get(ctx.db, alert_id)
    if row is None:
        log.warning("alert %s: not in the outbox", alert_id)
        return "unknown alert"
    if row.state in DONE_STATES:
        return "already done"
    if row.webhook not in WEBHOOKS:
        outbox.mark_failed(ctx.db, [alert_id], f"unknown webhook {row.webhook!r}")
        log.error("alert %s: unknown webhook %r, marked failed", alert_id, row.webhook)
        return "unknown webhook"
    url = ctx.webhook_url(row.webhook)
    if url is None:
        print(render_text(row.alert, alert_id=row.id), flush=True)
        outbox.mark_dry_run(ctx.db, [row.id], time.time())
        log.info("alert %s: dry run (no URL for webhook %s), printed", row.id, row.webhook)
        return "dry run"
    if webhooks.is_broken(ctx.redis, ctx.keys, row.webhook, url):
        log.info("alert %s: webhook %s is marked broken, left pending", alert_id, row.webhook)
        return "webhook broken"
    lock = WebhookLock(ctx.redis, ctx.keys.webhook_lock(row.webhook), ctx.owner, ctx.config.lock_ttl,
                       on_error=ctx.redis_outage.failed, dead=ctx.owner_dead)
    waited = _wait_for_lock(ctx, lock, row.webhook, alert_id)
    if waited is not None:
        return waited
    try:
        return _Drain(ctx, row.webhook, url, alert_id, lock).run()
    finally:
        lock.release()


def _wait_for_lock(ctx: NotifierContext, lock: WebhookLock, webhook: str, alert_id: int) -> str | None:
    """None once the lock is held; otherwise why the job has nothing more to do.

    A holder lingering as the webhook's drain takes the alert (handed over once, at the first try): the job
    ends. Any other holder is draining the backlog, this alert included, and registers as the drain afterwards
    only after one more look at the outbox: the job waits, and finds its alert done."""
    offered = False
    while not lock.try_acquire():
        row = outbox.get(ctx.db, alert_id)
        if row is None or row.state in DONE_STATES:
            return "already done"
        dead = lock.take_over_if_dead()
        if dead is not None:
            released = outbox.release_owner(ctx.db, dead, "notifier died")
            if released:
                log.warning("released %d alerts claimed by dead notifier %s", released, dead)
            continue
        if not offered:
            offered = True
            if lingering.hand_over(ctx, webhook, alert_id):
                return "handed to the webhook's drain"
        if ctx.stopping.wait(LOCK_POLL):
            return "stopping"
    return None


class _Drain:
    """Send the webhook's oldest alerts until the job's own alert is done, then the backlog (lock held)."""

    def __init__(self, ctx: NotifierContext, webhook: str, url: str, alert_id: int, lock: WebhookLock) -> None:
        self.ctx = ctx
        self.webhook = webhook
        self.url = url
        self.alert_id = alert_id
        self.lock = lock
        self.in_hand: list[int] = []  # claimed and not posted yet: given back if the job is interrupted
        self.rate_limited = 0
        self.messages = 0
        # After Discord refused a message of several embeds: send one by one up to this id.
        self.isolate_through: int | None = None
        self.own_done_at: float | None = None  # monotonic time the job's own alert was found done
        self.started = time.monotonic()
        self.registration: lingering.Registration | None = None  # lingering as the webhook's drain
        # Registered: no alert newer than this has a job (the newer ones were handed over), none to drop.
        self.jobs_through: int | None = None
        self.caught_up = False  # the last claim took every deliverable alert: nothing to send until woken
        self.idle_since = self.started  # registered: since when nothing came
        self.failing_cleared = False  # the webhook's failing record cleared since this job's last failure
        self.queue_looked_at = self.started  # registered: when the queue was last looked at
        self.queue_waited = False  # and whether jobs waited in it then

    def run(self) -> str:
        outcome = "interrupted"
        try:
            outcome = self._loop()
            return outcome
        finally:
            if self.in_hand:
                self._give_back()
            self._leave(outcome)
            if self.rate_limited:
                log.warning("webhook %s: %d rate-limit answers (429) during this job; waited and went on",
                            self.webhook, self.rate_limited)

    def _give_back(self) -> None:
        """Alerts claimed and not posted when the job was interrupted (database or Redis away, job timeout,
        a bug): given back, waiting for the database if need be (on a stop, their lease gives them back)."""
        ids, self.in_hand = self.in_hand, []
        while True:
            try:
                outbox.release(self.ctx.db, ids, "interrupted", owner=self.ctx.owner)
                return
            except TRANSIENT_ERRORS as error:
                self.ctx.db_outage.failed(error)
                if self.ctx.stopping.wait(DB_RETRY_SECONDS):
                    return

    def _leave(self, outcome: str) -> None:
        """Before the lock goes: a drain still registered unregisters, and the webhook's alerts still to deliver get
        jobs (not when the webhook is broken: they wait for a new URL); the limiter learns the last answer.
        Redis or the database away: the sweeper does what could not be done (and the answer is lost)."""
        ctx = self.ctx
        try:
            if self.registration is not None:
                self.registration.resign()
                if outcome != "webhook broken":
                    self._jobs_for_the_rest()
            ctx.limiter.flush(self.webhook)
        except (*TRANSIENT_ERRORS, redis.RedisError) as error:
            (ctx.db_outage if isinstance(error, TRANSIENT_ERRORS) else ctx.redis_outage).failed(error)
        finally:
            self.registration = None
            lingering.forget(ctx, self.webhook, self.lock)

    def _jobs_for_the_rest(self) -> None:
        """A job for every alert of the webhook still to deliver that has none (those handed to the drain)."""
        ctx = self.ctx
        rows = outbox.deliverable(ctx.db, time.time(), self.webhook)
        if rows:
            with ctx.redis.pipeline(transaction=False) as pipe:
                enqueue_alerts(pipe, ctx.queue, [AlertJob(row.id, describe(row.alert)) for row in rows],
                               retry_intervals=ctx.config.retry_intervals)
                pipe.execute()
            log.info("webhook %s: this job stops draining; %d alerts left to their own jobs", self.webhook, len(rows))

    @property
    def own_done(self) -> bool:
        return self.own_done_at is not None

    def _finished(self) -> str | None:
        """What the job did once it has nothing more to send; None while it goes on."""
        ctx = self.ctx
        if self.own_done_at is None:
            row = outbox.get(ctx.db, self.alert_id)
            if row is not None and row.state not in DONE_STATES:
                return None
            self.own_done_at = time.monotonic()
        if self.isolate_through is not None:
            return None  # a refused message is taken apart completely first
        if self.registration is not None:
            return self._linger()
        if time.monotonic() - self.own_done_at < DRAIN_ON_SECONDS:
            if not self.caught_up and outbox.has_deliverable(ctx.db, self.webhook, time.time()):
                return None  # the backlog: sent by this job rather than by one job per message
            if self._register():
                return self._linger()
        return self._done()

    def _register(self) -> bool:
        """Linger as the webhook's drain (foreground notifiers: NOTIFIER_LINGER_SECONDS), unless its time is up."""
        if self.ctx.config.linger_seconds <= 0 or time.monotonic() - self.started >= DRAIN_LIFETIME_SECONDS:
            return False
        self.registration = lingering.register(self.ctx, self.webhook, self.lock)
        # Read after the registration: an alert stored later is enqueued later, so it is handed over.
        self.jobs_through = outbox.newest_id(self.ctx.db)
        # Alerts committed before the registration have their jobs and are in the outbox: look there once more.
        self.caught_up = False
        self.idle_since = time.monotonic()
        return True

    def _linger(self) -> str | None:
        """Registered: None once alerts may be deliverable (handed over, or in the outbox); what the job did when
        it leaves (idle for NOTIFIER_LINGER_SECONDS, its time up, a stop, the lock lost)."""
        ctx, registration = self.ctx, self.registration
        assert registration is not None
        looked = False  # at the outbox, since the drain went idle
        while True:
            if not self.caught_up:
                if outbox.has_deliverable(ctx.db, self.webhook, time.time()):
                    return None
                self.caught_up = looked = True
            if ctx.stopping.is_set():
                return "stopping"
            if self.lock.lost:
                log.warning("webhook %s: lock lost, stopping this job", self.webhook)
                return "lock lost"
            if time.monotonic() - self.started >= DRAIN_LIFETIME_SECONDS or self._worker_wanted():
                return self._done()
            idle = time.monotonic() - self.idle_since
            if idle >= ctx.config.linger_seconds:
                if not looked:  # what came without a hand-over (a crash's leftovers): before leaving
                    self.caught_up = False
                    continue
                closed = registration.close()
                if closed == lingering.CLOSED:
                    self.registration = None
                    return self._done()
                if closed == lingering.LOST:
                    return "drain registration lost"  # gives the webhook's alerts jobs (`_leave`)
                self.caught_up = False  # alerts came between the last read and the close
                self.idle_since = time.monotonic()
                continue
            if registration.wait(min(WAIT_SLICE_SECONDS, ctx.config.linger_seconds - idle)):
                self.caught_up = False
                self.idle_since = time.monotonic()
                continue
            # A quiet while: what Discord said last goes to the shared limiter now, not at the next message.
            ctx.limiter.flush(self.webhook)

    def _worker_wanted(self) -> bool:
        """Jobs waited in the queue at two looks in a row (QUEUE_LOOK_SECONDS apart at least): no worker is free for
        them, and this drain's worker is wanted (a notifier alone, or every worker lingering)."""
        now = time.monotonic()
        if now - self.queue_looked_at < QUEUE_LOOK_SECONDS:
            return False
        self.queue_looked_at = now
        waited, self.queue_waited = self.queue_waited, self.ctx.queue.count > 0
        if waited and self.queue_waited:
            log.info("webhook %s: jobs wait for a worker; this drain leaves to free its own", self.webhook)
            return True
        return False

    def _done(self) -> str:
        return "delivered" if self.messages else "already done"

    def _loop(self) -> str:
        ctx = self.ctx
        while True:
            if self.lock.lost:
                log.warning("webhook %s: lock lost, stopping this job", self.webhook)
                return "lock lost"
            finished = self._finished()
            if finished is not None:
                return finished
            if ctx.stopping.is_set():
                return "stopping"
            if not ctx.limiter.acquire(self.webhook, stop=ctx.stopping):
                return "stopping"
            if self.lock.lost:  # the wait may have been long
                ctx.limiter.cancel(self.webhook)
                continue
            limit = 1 if self.isolate_through is not None else EMBEDS_PER_MESSAGE
            batch = outbox.claim(ctx.db, self.webhook, ctx.owner, time.time(), ctx.config.lease_seconds, limit)
            if not batch:
                ctx.limiter.cancel(self.webhook)
                if self.own_done:
                    self.caught_up = True
                    continue
                # Our alert is claimed by another notifier whose lease still runs: it finishes it,
                # or the sweeper gives it a new job once the lease ran out.
                return "claimed elsewhere"
            # Registered, a message with room left took everything there was: what comes next is handed over.
            self.caught_up = self.registration is not None and len(batch) < limit
            self.idle_since = time.monotonic()
            outcome = self._send(batch)
            if outcome is not None:
                return outcome

    def _send(self, batch: list[outbox.OutboxRow]) -> str | None:
        ctx = self.ctx
        rows, embeds = [], []
        for row in batch:
            try:
                embeds.append(render(row.alert, alert_id=row.id, created_at=row.created_at))
                rows.append(row)
            except Exception as error:  # noqa: BLE001 - one bad payload must not block the others
                outbox.mark_failed(ctx.db, [row.id], f"render error: {type(error).__name__}", owner=ctx.owner)
                log.error("alert %s: could not be rendered (%s), marked failed", row.id, type(error).__name__)
        if not rows:
            ctx.limiter.cancel(self.webhook)
            return None
        first = pack(embeds)[0]
        sending, rest = rows[: len(first)], rows[len(first):]
        if rest:
            outbox.release(ctx.db, [r.id for r in rest], owner=ctx.owner)
        self.in_hand = [r.id for r in sending]
        result = discord.post(ctx.session, self.url, discord.message(first), timeout=ctx.config.http_timeout)
        ids = self.in_hand
        if result.outcome == discord.SENT:
            # Posted: never given back from here on. Recorded right after the answer, before anything else.
            self.in_hand = []
            if _record_sent(ctx, ids, result.message_id or "unknown"):
                jobqueue.drop_waiting(ctx.redis, ctx.queue, [i for i in ids if i != self.alert_id
                                                             and (self.jobs_through is None or i <= self.jobs_through)])
            ctx.limiter.answered(self.webhook, result.headers)  # learnt with the next reservation
        else:
            ctx.limiter.update(self.webhook, result.headers)
        if self.isolate_through is not None and max(ids) >= self.isolate_through:
            self.isolate_through = None
        if result.outcome == discord.SENT:
            self.messages += 1
            ctx.stats.messages += 1
            ctx.stats.alerts += len(ids)
            if not self.failing_cleared:
                webhooks.record_success(ctx.redis, ctx.keys, self.webhook)
                self.failing_cleared = True  # only this lock's holder fails on this webhook meanwhile
            log.info("webhook %s: delivered alerts %s in message %s", self.webhook, _span(ids), result.message_id)
            return None
        self.in_hand = []
        if result.outcome == discord.RATE_LIMITED:
            outbox.release(ctx.db, ids, owner=ctx.owner)
            ctx.limiter.block(self.webhook, result.retry_after, is_global=result.is_global)
            self.rate_limited += 1
            ctx.stats.rate_limited += 1
            log.warning("webhook %s: 429 from Discord (scope %s%s), waiting %.2f s",
                        self.webhook, result.scope or "unknown", ", global" if result.is_global else "",
                        result.retry_after)
            return None
        if result.outcome == discord.BROKEN:
            outbox.release(ctx.db, ids, result.error, owner=ctx.owner)
            self._mark_broken(result)
            return "webhook broken"
        if result.outcome == discord.INVALID:
            if len(ids) > 1:
                outbox.release(ctx.db, ids, owner=ctx.owner)
                self.isolate_through = max(ids)
                log.warning("webhook %s: Discord refused a message of %d alerts (%s); sending them one by one",
                            self.webhook, len(ids), result.error)
            else:
                outbox.mark_failed(ctx.db, ids, result.error or "refused by Discord", owner=ctx.owner)
                log.error("alert %s: refused by Discord, marked failed: %s", ids[0], result.error)
            return None
        return self._failed_attempt(ids, result)

    def _failed_attempt(self, ids: list[int], result: discord.PostResult) -> str:
        """5xx, a timeout, an answer not from Discord: give the alerts back, say so in one line, let RQ retry
        (the job's own alert not done yet), or leave them to their own jobs (it is done: the job ends)."""
        ctx = self.ctx
        error = result.error or "transient error"
        # A timeout may hide a message Discord posted all the same: counted as a possible duplicate.
        outbox.release(ctx.db, ids, error, owner=ctx.owner,
                       possible_duplicate=TIMED_OUT if error == "timeout" else None)
        job = None if self.own_done else get_current_job()
        after = "left to their own jobs" if self.own_done else next_step(job)
        log.warning("webhook %s: alerts %s not delivered: %s; %s", self.webhook, _span(ids), error, after)
        webhooks.record_failure(ctx.redis, ctx.keys, self.webhook, result.status, error)
        self.failing_cleared = False
        if self.webhook != HEALTH_WEBHOOK:
            if result.blocked:
                health.webhook_blocked(ctx, self.webhook, error, after)
            if job is not None and not job.retries_left:
                health.delivery_failing(ctx, self.webhook, self.alert_id, error)
        if self.own_done:
            return "delivered, then a failed attempt"
        raise DeliveryError(f"webhook {self.webhook}: {error}")

    def _mark_broken(self, result: discord.PostResult) -> None:
        ctx = self.ctx
        mark = webhooks.mark(ctx.redis, ctx.keys, self.webhook, self.url)
        log.error("webhook %s: Discord answered %s (%s); marked broken (URL fingerprint %s), its alerts stay pending",
                  self.webhook, result.status, result.error, mark)
        if self.webhook != HEALTH_WEBHOOK:
            health.webhook_broken(ctx, self.webhook, result.status, mark)


def next_step(job: Job | None) -> str:
    """What happens after a failed attempt of `job`: its next retry, or the failed registry."""
    if job is None:
        return "not retried (run outside RQ)"
    if job.retries_left:
        total = max(len(job.retry_intervals or ()), job.retries_left)
        return f"retry {total - job.retries_left + 1} of {total} in {job.get_retry_interval()} s"
    return "no retry left: the job goes to RQ's failed registry, the alerts stay pending"


def _record_sent(ctx: NotifierContext, ids: list[int], message_id: str) -> bool:
    """Record a message Discord accepted, for as long as the database is away: giving up would let its
    alerts be posted again. Only alerts this notifier still holds are recorded (see CLAIM_LOST); True when
    that is all of them."""
    pause, most = RECORD_WAIT
    away_since: float | None = None
    while True:
        try:
            try:
                recorded = outbox.mark_sent(ctx.db, ids, message_id, time.time(), owner=ctx.owner)
                break
            except TRANSIENT_ERRORS as error:
                if away_since is None:
                    away_since = time.monotonic()
                    log.warning("message %s (alerts %s) posted, but the database is unavailable (%s): keeping the"
                                " claim, trying again until it is recorded", message_id, _span(ids), error_line(error))
            # Not cut short by a stop request: this is what a stop waits for.
            time.sleep(pause)
            pause = min(most, pause * 2)
        except JobTimeoutException:
            log.warning("message %s: the job's time ran out while recording it; still trying", message_id)
    if away_since is not None:
        log.info("message %s recorded as sent after %.0f s", message_id, time.monotonic() - away_since)
    if recorded < len(ids):
        lost = len(ids) - recorded
        log.error("message %s: %d of its alerts were taken by another notifier before it was recorded (its claim"
                  " was lost): they will be posted twice", message_id, lost)
        try:
            outbox.count_possible_duplicate(ctx.db, CLAIM_LOST, lost)
        except TRANSIENT_ERRORS:
            pass  # the error line above says it
    return recorded == len(ids)


def _span(ids: list[int]) -> str:
    return f"{ids[0]}" if len(ids) == 1 else f"{ids[0]}..{ids[-1]} ({len(ids)})"
