"""A webhook's lingering drain: the RQ job holding the webhook's lock stays a while for its new alerts, which are
handed to it instead of getting an RQ job each.

A delivery job (`notifier.deliver`) sends its own alert and the webhook's backlog. Then, in a notifier's
foreground mode, instead of ending it registers as the webhook's drain (`register`): a stream
(`Keys.drain`) and an owner key holding its lock's token, with the lock's TTL as their lease, renewed with
the lock (`WebhookLock.keep_drain`). From then on an alert enqueued for the webhook (the processor's batch,
the sweeper, a health alert: `shared/lua/jobs.lua`) is added to that stream instead of getting a job, in the
same step as the check that the stream is there (XADD NOMKSTREAM). The drain waits on the stream (`wait`:
XREAD, a few seconds at a time; `wake` ends the wait on a stop request) and sends from the outbox, oldest
first and packed, as any delivery job does. So an alert that arrives alone costs its hand-over and the
drain's read, not RQ's whole job cycle (about 50 Redis commands). A job that finds the lock held by a
lingering drain hands its alert over too (`hand_over`).

How a drain leaves, never stranding an alert:
* idle for NOTIFIER_LINGER_SECONDS: `close`, one script that unregisters only when nothing was added to the
  stream since the drain last read it (otherwise the drain reads it and stays): an alert is either read by
  the drain or finds no drain and gets a job;
* any other end (a stop, a failed attempt, a broken webhook, the drain's time is up, the lock lost, an error):
  `resign` unregisters at once, then the job gives every alert of the webhook still to deliver a job unless it
  has one (`notifier.deliver`); whatever it cannot (Redis or the database away) the sweeper does;
* the drain's process dies (kill -9): its registration runs out with its lease, or goes as soon as another
  notifier's sweeper sees it is gone (`live`: its heartbeat says so); its alerts are pending in the outbox
  without a job, and the sweeper gives them one.

While a live drain is registered for a webhook, the sweeper leaves that webhook's pending alerts to it: the
drain looks at the outbox whenever it is woken and once more before it closes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from notifier import scripts
from notifier.context import NotifierContext
from notifier.lock import WebhookLock
from shared.outbox import job_id
from shared.redisconn import text

log = logging.getLogger(__name__)

# Entries a drain reads at once (the enqueue script keeps its stream to about 1,000): it only needs the newest.
READ_COUNT = 1000
# What `Registration.close` found.
CLOSED, STAYS, LOST = "closed", "stays", "lost"
# Approximate length the hand-over of a waiting job keeps the stream to, as the enqueue script does.
STREAM_MAXLEN = 1000


@dataclass
class Registration:
    """This job, registered as its webhook's drain."""

    conn: redis.Redis
    webhook: str
    stream: str
    owner_key: str
    token: str
    last_id: str  # the last stream entry read

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` (at least a millisecond) for alerts handed over; True when some came."""
        reply = self.conn.xread({self.stream: self.last_id}, count=READ_COUNT, block=max(1, int(seconds * 1000)))
        entries = [entry for _stream, items in reply or [] for entry in items]
        if entries:
            self.last_id = text(entries[-1][0])
        return bool(entries)

    def close(self) -> str:
        """Leave if nothing came since the last read: CLOSED (unregistered), STAYS (alerts came meanwhile: read
        now), or LOST (the registration had run out: what it was handed may have no job)."""
        reply = scripts.load(self.conn, "drain_close")(keys=[self.stream, self.owner_key],
                                                        args=[self.token, self.last_id])
        status = int(reply[0])
        if status == 2:
            self.last_id = text(reply[1])
            return STAYS
        if status == 0:
            log.warning("webhook %s: this drain's registration had run out", self.webhook)
            return LOST
        return CLOSED

    def resign(self) -> bool:
        """Unregister now (while still this drain's); True when it was."""
        return bool(scripts.load(self.conn, "drain_resign")(keys=[self.stream, self.owner_key], args=[self.token]))


def register(ctx: NotifierContext, webhook: str, lock: WebhookLock) -> Registration:
    """Register the holder of `lock` as the webhook's drain (see the module's doc); the lock's renewal keeps it."""
    keys = (ctx.keys.drain(webhook), ctx.keys.drain_owner(webhook))
    ctx.draining[webhook] = lock.token  # first: the sweeper of this process must never take it for a stale one
    first = scripts.load(ctx.redis, "drain_register")(keys=list(keys), args=[lock.token, lock.ttl_ms])
    lock.keep_drain(keys)
    return Registration(ctx.redis, webhook, keys[0], keys[1], lock.token, text(first))


def forget(ctx: NotifierContext, webhook: str, lock: WebhookLock) -> None:
    """This process no longer runs the webhook's drain (after `close` or `resign`, or when they failed)."""
    lock.keep_drain(None)
    if ctx.draining.get(webhook) == lock.token:
        del ctx.draining[webhook]


def hand_over(ctx: NotifierContext, webhook: str, alert_id: int) -> bool:
    """Hand an alert to the webhook's drain if one is registered (True): the job that had it can end."""
    added = ctx.redis.xadd(ctx.keys.drain(webhook), {"job": job_id(alert_id)}, nomkstream=True,
                           maxlen=STREAM_MAXLEN, approximate=True)
    return added is not None


def wake(ctx: NotifierContext) -> None:
    """Wake this process's lingering drains (a stop was requested): their wait ends at once, not at its end."""
    for webhook in list(ctx.draining):
        ctx.redis.xadd(ctx.keys.drain(webhook), {"wake": "stop"}, nomkstream=True, maxlen=STREAM_MAXLEN,
                       approximate=True)


def live(ctx: NotifierContext, webhook: str) -> bool:
    """A drain is registered for the webhook and may still deliver its alerts: this process's running drain, or
    another notifier's that is not gone (its heartbeat says, wherever it ran). One left by a drain that is gone
    (a job of this process that ended without unregistering, say Redis was away then; a notifier that died) is
    unregistered here."""
    raw = ctx.redis.get(ctx.keys.drain_owner(webhook))
    if raw is None:
        return False
    token = text(raw)
    owner = token.partition("|")[0]
    if owner == ctx.owner:
        if ctx.draining.get(webhook) == token:
            return True
    elif not ctx.owner_dead(owner):
        return True
    resigned = scripts.load(ctx.redis, "drain_resign")(keys=[ctx.keys.drain(webhook), ctx.keys.drain_owner(webhook)],
                                                        args=[token])
    if resigned:
        log.warning("webhook %s: its drain %s is gone; unregistered it, its alerts get jobs", webhook, owner)
    return False
