"""The RQ job: `deliver_alert(alert_id)` posts pending alerts of one webhook to Discord.

A job does not post only its own alert: it takes the webhook's lock and drains the
webhook's oldest deliverable alerts, up to 10 per message, until its own alert is done.
Later jobs then find their alerts sent and return at once. So alerts go out oldest first
and in few messages, whatever the number of notifier processes.

Crash window (the only way an alert is posted twice): the process dies, or the job is
killed, after Discord answered a message and before `outbox.mark_sent` recorded it. The
alerts are still claimed ("sending"); once their lease runs out (or at once, when a notifier
on the same host sees the claiming process is gone) they are delivered again. `mark_sent`
runs immediately after Discord's answer, nothing in between, to keep that window small.
A timeout is the other case: Discord may have posted a message whose answer never came;
the alerts are retried and may appear twice. Discord offers no idempotency key for webhooks.
"""
from __future__ import annotations

import logging
import time

from rq import get_current_job
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

from notifier import context, discord, health, webhooks
from notifier.context import NotifierContext
from notifier.drytext import render_text
from notifier.limits import EMBEDS_PER_MESSAGE, pack
from notifier.lock import WebhookLock
from notifier.render import render
from shared import outbox
from shared.outbox import DEAD, DRY_RUN, FAILED, SENT
from shared.storage import TRANSIENT_ERRORS
from shared.webhooks import HEALTH_WEBHOOK, WEBHOOKS

log = logging.getLogger(__name__)

DONE_STATES = frozenset({SENT, DRY_RUN, FAILED, DEAD})
# While another notifier holds the webhook's lock: look again this often whether our alert is done.
LOCK_POLL = 0.2


class DeliveryError(Exception):
    """Discord could not be reached or failed (5xx, timeout): RQ retries the job later.

    Its text is safe to store and log: it never contains the webhook URL.
    """


def deliver_alert(alert_id: int) -> str:
    """Deliver an alert (and the older ones of its webhook); returns what happened.

    Returns without raising when the alert is already done, its webhook is broken (the alert
    stays pending) or Discord refused it; raises DeliveryError on 5xx/timeouts so RQ retries.
    """
    ctx = context.get()
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
    lock = WebhookLock(ctx.redis, ctx.keys.webhook_lock(row.webhook), ctx.owner, ctx.config.lock_ttl)
    waited = _wait_for_lock(ctx, lock, alert_id)
    if waited is not None:
        return waited
    try:
        return _Drain(ctx, row.webhook, url, alert_id, lock).run()
    finally:
        lock.release()


def _wait_for_lock(ctx: NotifierContext, lock: WebhookLock, alert_id: int) -> str | None:
    """None once the lock is held; otherwise why the job has nothing more to do."""
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
        if ctx.stopping.wait(LOCK_POLL):
            return "stopping"
    return None


class _Drain:
    """Send the webhook's oldest alerts until the job's own alert is done (lock held)."""

    def __init__(self, ctx: NotifierContext, webhook: str, url: str, alert_id: int, lock: WebhookLock) -> None:
        self.ctx = ctx
        self.webhook = webhook
        self.url = url
        self.alert_id = alert_id
        self.lock = lock
        self.in_hand: list[int] = []
        self.rate_limited = 0
        self.messages = 0
        # After Discord refused a message of several embeds: send one by one up to this id.
        self.isolate_through: int | None = None

    def run(self) -> str:
        try:
            return self._loop()
        finally:
            if self.in_hand:
                # Interrupted between claim and answer (job timeout, crash in our code).
                outbox.release(self.ctx.db, self.in_hand, "interrupted")
                self.in_hand = []
            if self.rate_limited:
                log.warning("webhook %s: %d rate-limit answers (429) during this job; waited and went on",
                            self.webhook, self.rate_limited)

    def _loop(self) -> str:
        ctx = self.ctx
        while True:
            if self.lock.lost:
                log.warning("webhook %s: lock lost, stopping this job", self.webhook)
                return "lock lost"
            row = outbox.get(ctx.db, self.alert_id)
            # Done with our alert; but a refused message is taken apart completely first.
            if (row is None or row.state in DONE_STATES) and self.isolate_through is None:
                return "delivered" if self.messages else "already done"
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
                # Our alert is claimed by another notifier whose lease still runs: it finishes it,
                # or the sweeper gives it a new job once the lease ran out.
                return "claimed elsewhere"
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
                outbox.mark_failed(ctx.db, [row.id], f"render error: {type(error).__name__}")
                log.error("alert %s: could not be rendered (%s), marked failed", row.id, type(error).__name__)
        if not rows:
            ctx.limiter.cancel(self.webhook)
            return None
        first = pack(embeds)[0]
        sending, rest = rows[: len(first)], rows[len(first):]
        if rest:
            outbox.release(ctx.db, [r.id for r in rest])
        self.in_hand = [r.id for r in sending]
        result = discord.post(ctx.session, self.url, discord.message(first), timeout=ctx.config.http_timeout)
        if result.outcome == discord.SENT:
            # Right after the answer, before anything else: this is the crash window.
            _record_sent(ctx, self.in_hand, result.message_id or "unknown")
        ids, self.in_hand = self.in_hand, []
        ctx.limiter.update(self.webhook, result.headers)
        if self.isolate_through is not None and max(ids) >= self.isolate_through:
            self.isolate_through = None
        if result.outcome == discord.SENT:
            self.messages += 1
            ctx.stats.messages += 1
            ctx.stats.alerts += len(ids)
            log.info("webhook %s: delivered alerts %s in message %s", self.webhook, _span(ids), result.message_id)
            return None
        if result.outcome == discord.RATE_LIMITED:
            outbox.release(ctx.db, ids)
            ctx.limiter.block(self.webhook, result.retry_after, is_global=result.is_global)
            self.rate_limited += 1
            ctx.stats.rate_limited += 1
            log.warning("webhook %s: 429 from Discord (scope %s%s), waiting %.2f s",
                        self.webhook, result.scope or "unknown", ", global" if result.is_global else "",
                        result.retry_after)
            return None
        if result.outcome == discord.BROKEN:
            outbox.release(ctx.db, ids, result.error)
            self._mark_broken(result)
            return "webhook broken"
        if result.outcome == discord.INVALID:
            if len(ids) > 1:
                outbox.release(ctx.db, ids)
                self.isolate_through = max(ids)
                log.warning("webhook %s: Discord refused a message of %d alerts (%s); sending them one by one",
                            self.webhook, len(ids), result.error)
            else:
                outbox.mark_failed(ctx.db, ids, result.error or "refused by Discord")
                log.error("alert %s: refused by Discord, marked failed: %s", ids[0], result.error)
            return None
        error = result.error or "transient error"
        outbox.release(ctx.db, ids, error)
        self._maybe_report_failing(error)
        raise DeliveryError(f"webhook {self.webhook}: {error}")

    def _mark_broken(self, result: discord.PostResult) -> None:
        ctx = self.ctx
        mark = webhooks.mark(ctx.redis, ctx.keys, self.webhook, self.url)
        log.error("webhook %s: Discord answered %s (%s); marked broken (URL fingerprint %s), its alerts stay pending",
                  self.webhook, result.status, result.error, mark)
        if self.webhook != HEALTH_WEBHOOK:
            health.webhook_broken(ctx, self.webhook, result.status, mark)

    def _maybe_report_failing(self, error: str) -> None:
        job = get_current_job()
        if job is None or job.retries_left or self.webhook == HEALTH_WEBHOOK:
            return
        log.error("alert %s: last retry failed (%s); the job goes to RQ's failed registry", self.alert_id, error)
        health.delivery_failing(self.ctx, self.webhook, self.alert_id, error)


def _record_sent(ctx: NotifierContext, ids: list[int], message_id: str) -> None:
    """mark_sent, tried a few times: if it cannot be recorded, the alerts are posted again later."""

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("could not record message %s as sent (%s), trying again", message_id, type(error).__name__)

    for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_incrementing(start=0.5, increment=0.5),
                            retry=retry_if_exception_type(TRANSIENT_ERRORS), reraise=True, before_sleep=warn):
        with attempt:
            outbox.mark_sent(ctx.db, ids, message_id, time.time())


def _span(ids: list[int]) -> str:
    return f"{ids[0]}" if len(ids) == 1 else f"{ids[0]}..{ids[-1]} ({len(ids)})"
