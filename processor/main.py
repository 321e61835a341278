"""`sofamon process`: read the fetched stream, decide what to alert, enqueue the alerts.

Redis or the database away, or Redis refusing writes (OOM, READONLY, LOADING): one log line when it
starts, one when it answers again, and the batch is tried again meanwhile (`shared.retry`), its entries
staying pending; a burst gives up when the waits have grown to their longest. A Redis that comes back
without its data gets its stream and consumer group back (`processor.consumer`).

Each entry is committed to the database on its own; the Redis side of a whole batch of committed entries
(watch their events, follow their deferred tips, enqueue their alerts, acknowledge them) is one script
call at the end of the batch (`processor.commit`): a few commands for the batch and one or two per alert,
instead of several round trips per alert. What Redis refuses is not lost: the entries stay pending in the stream
and their Redis side is done first when Redis answers again (an alert whose job exists is not enqueued
again).

One entry never holds up the others. Data the database refuses for good (`PERMANENT_ERRORS`) is
dead-lettered at once. A transient database error while the database still takes a write belongs to
the entry: it is left pending and delivered again, after the rest of its batch, and dead-lettered
once Redis has delivered it more than `PROCESSOR_MAX_DELIVERIES` times (a processor that died on it
counts too). While the database is away nothing is read, so an outage, however long, adds at most
one delivery to the entry in hand and dead-letters nothing.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import date
from types import FrameType

import redis
from pydantic import ValidationError

from processor import consensusmembers, dedup, digest
from processor.commit import ZSetChange, commit
from processor.consumer import StreamConsumer
from processor.handle import BadRecord, Handler, Outcome, Rules
from shared import deferred, healththrottle, heartbeat, instance, outbox, settlements, unsettled, votes, watch
from shared.jobs import AlertJob, alerts_queue, describe, enqueue_alert
from shared.keys import PROCESSOR_GROUP, Keys
from shared.logs import error_line, first_line, setup_logging
from shared.models import FetchRecord
from shared.outage import Outage, redis_reason
from shared.redisconn import REDIS_ERRORS, connect, refusal_name
from shared.retry import until_available
from shared.settings import Settings
from shared.storage import PERMANENT_ERRORS, TRANSIENT_ERRORS, Database
from shared.timefmt import duration
from shared.webhooks import MAIN_WEBHOOK

log = logging.getLogger("processor")

BATCH = 50
BLOCK_MS = 2000
WATCH_SYNC_SECONDS = 60
DIGEST_CHECK_SECONDS = 60
# Redis or the database away: retry after 1 s, doubling up to 30 s. A burst gives up once the wait
# would reach 30 s: after the waits of 1, 2, 4, 8 and 16 s, the sixth failure ends it.
SERVICE_ERRORS = (*REDIS_ERRORS, *TRANSIENT_ERRORS)
MAX_RETRY_PAUSE = 30.0
BURST_ATTEMPTS = 6


def throttle_of(record: FetchRecord) -> tuple[str, str]:
    """The health throttle topic a fetcher transition counts against (`upstream-blocked`, ...), and who holds
    it when it is alerted: the transition itself, so the same entry delivered again is still let through."""
    return record.subject[:64].replace("_", "-"), f"{record.subject[:64]}:{record.fetched_at!r}"


ROLE = "processor"


def consumer_name() -> str:
    """This process's instance id (its heartbeat is `processor:<id>`): unique across machines and restarts. A
    restarted processor takes its predecessor's pending entries as those of a gone consumer."""
    return instance.instance_id()


def heartbeat_name(consumer: str) -> str:
    return f"{ROLE}:{consumer}"


class Processor:
    def __init__(self, settings: Settings, conn: redis.Redis, db: Database, name: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.conn = conn
        self.db = db
        self.keys = Keys.of(settings)
        self.name = name or consumer_name()
        self.timing = heartbeat.Timing.of(settings)
        self.consumer = StreamConsumer(conn, self.keys.fetched, PROCESSOR_GROUP, self.name,
                                       claim_idle_ms=int(settings.notifier_lease_seconds * 1000),
                                       check_every=self.timing.check_every, gone=self._gone)
        self.handler = Handler(db, Rules.of(settings), clock)
        self.clock = clock
        self.queue = alerts_queue(conn)
        self.stop = threading.Event()
        self.handled = 0
        self._watch_synced = 0.0
        self._digest_checked = float("-inf")
        self._digest_day: date | None = None  # the last day whose digest this processor saw made (or not needed)
        self._digest_job: AlertJob | None = None  # a digest committed whose job Redis has not taken yet
        self._group_ready = False
        self._database_away = False
        self._last_error: dict[str, str] = {}  # entry id -> why it failed last, for its dead letter
        # One line when Redis or the database goes away, one when it answers again (the retries are silent).
        meanwhile = f"retrying every {MAX_RETRY_PAUSE:.0f} s at most, nothing is lost meanwhile"
        self._outages = {True: Outage("Redis", log, meanwhile, reason=redis_reason, level=logging.ERROR),
                         False: Outage("database", log, meanwhile, level=logging.ERROR)}
        # Entries committed to the database whose Redis side (watch, enqueue, ack) is still to do, in order:
        # done at the end of their batch, or first thing when Redis refused it then.
        self._committed: dict[str, Outcome] = {}
        self.mode: str | None = None  # heartbeat.BURST for a burst

    def step(self, block_ms: int | None) -> int:
        """Handle one batch; returns how many entries were read (0: nothing pending)."""
        self._sync_watch()
        self._check_digest()
        if self._database_away:
            # Reading would deliver the pending entries again: not before the database is back.
            self.db.ping()
            self._database_away = False
        self._finish_committed()
        deliveries = self.consumer.read(BATCH, block_ms)
        for delivery in deliveries:
            if self.stop.is_set():
                break
            self.handle_entry(*delivery)
        self._finish_committed()
        return len(deliveries)

    def handle_entry(self, entry_id: str, fields: dict, deliveries: int = 1) -> None:
        if deliveries > self.settings.processor_max_deliveries:
            self._dead_letter(entry_id, fields, self._given_up(entry_id, deliveries))
            return
        try:
            record = FetchRecord.from_fields(fields)
            # A throttled health transition changes nothing: it is acknowledged with its batch, like the others.
            outcome = Outcome() if self._throttled(record) else self.handler.handle(record)
        except (BadRecord, ValidationError) as error:
            self._dead_letter(entry_id, fields, first_line(error))
            return
        except PERMANENT_ERRORS as error:  # before TRANSIENT_ERRORS: some are both to psycopg
            self._dead_letter(entry_id, fields, error_line(error, 250))
            return
        except TRANSIENT_ERRORS as error:
            self._failed(entry_id, deliveries, error)
            return
        except REDIS_ERRORS:
            raise  # Redis is away: the entry stays pending and is tried again
        except Exception as error:  # noqa: BLE001 - one odd entry must not stop every alert behind it
            self._dead_letter(entry_id, fields, error_line(error, 250))
            return
        self.handled += 1
        for line in outcome.summaries:
            log.info("alert %s (entry %s)", line, entry_id)
        self._committed[entry_id] = outcome

    def _finish_committed(self) -> None:
        """The Redis side of the committed entries, in one script call (`processor.commit`): watch their events,
        ask for the votes of their consensus matches, follow their deferred tips, enqueue their alerts (or hand
        them to their webhook's lingering drain), acknowledge them. When Redis refuses, all of it stays for the next try (done again whole: each part
        is idempotent, and an alert whose job exists gets no other).
        """
        if not self._committed:
            return
        outcome = Outcome.merged(self._committed.values())
        entry_ids = list(self._committed)
        if outcome.alert_ids or outcome.watch or outcome.waiting or outcome.done_waiting or outcome.votes_wanted \
                or outcome.votes_done:
            # Each alert's summary line is its job's description in rq-dashboard (kind, predictor, match; no secrets).
            jobs = [AlertJob(alert_id, summary, self.keys.drain(webhook)) for alert_id, webhook, summary
                    in zip(outcome.alert_ids, outcome.webhooks, outcome.summaries, strict=True)]
            commit(self.conn, stream=self.keys.fetched, group=PROCESSOR_GROUP, acks=entry_ids,
                   sorted_sets=[ZSetChange(self.keys.watched_events, (), outcome.watch),
                                ZSetChange(self.keys.votes_wanted, outcome.votes_done, outcome.votes_wanted),
                                ZSetChange(self.keys.deferred_tips, outcome.done_waiting, outcome.waiting)],
                   queue=self.queue, jobs=jobs, retry_intervals=self.settings.notifier_retry_intervals)
            self.consumer.acknowledged(entry_ids)
        else:
            self.consumer.ack(entry_ids)  # entries that changed nothing: a lone XACK
        for entry_id in entry_ids:
            self._last_error.pop(entry_id, None)
        self._committed.clear()

    def _throttled(self, record: FetchRecord) -> bool:
        """A health transition within the throttle period of another of its kind: not alerted.

        Checked here, in Redis, because the key is the one the notifier's own health alerts use
        (`shared.healththrottle`): one throttle for every process, however many processors run.
        """
        if record.kind != "health":
            return False
        topic, holder = throttle_of(record)
        seconds = self.settings.notifier_health_throttle_seconds
        if healththrottle.take(self.conn, self.keys, topic, seconds, holder=holder):
            return False
        log.info("health %s not alerted: one was alerted less than %s ago", record.subject[:64], duration(seconds))
        return True

    def _failed(self, entry_id: str, deliveries: int, error: BaseException) -> None:
        """A transient database error: the database is away (raise, to wait), or the entry fails (leave it pending)."""
        try:
            self.db.ping()
        except TRANSIENT_ERRORS:
            self._database_away = True
            raise error from None
        self._last_error[entry_id] = error_line(error, 250)
        log.error("%s; entry %s left pending, to be tried again (delivery %d of at most %d)", _unavailable(error),
                  entry_id, deliveries, self.settings.processor_max_deliveries)

    def _given_up(self, entry_id: str, deliveries: int) -> str:
        last = self._last_error.get(entry_id) or "none seen by this processor (one may have died handling it)"
        return f"delivered {deliveries} times without being processed; last error: {last}"

    def _dead_letter(self, entry_id: str, fields: dict, reason: str) -> None:
        log.warning("entry %s is unusable, moved to dead letters: %s", entry_id, reason)
        self.consumer.dead_letter(self.keys.dead_letters, entry_id, fields, reason)
        self._last_error.pop(entry_id, None)

    def _sync_watch(self) -> None:
        """Keep the watched events, deferred tips and wanted votes complete even if a ZADD was lost between commit
        and crash, and the alerted tips still open after their match for the fetcher to settle."""
        now = self.clock()
        if now - self._watch_synced < WATCH_SYNC_SECONDS:
            return
        with self.db.read() as tx:
            upcoming = dedup.upcoming_events(tx, now)
            waiting = dedup.waiting(tx, now, self.settings.match_grace_period_minutes)
            agreeing = consensusmembers.waiting_events(tx)
            still_open = settlements.open_after_kickoff(tx, now - unsettled.SETTLE_AFTER_SECONDS,
                                                        now - unsettled.GIVE_UP_SECONDS)
        watch.add(self.conn, self.keys, upcoming)
        unsettled.sync(self.conn, self.keys, {unsettled.member(event, pid): start + unsettled.SETTLE_AFTER_SECONDS
                                              for (event, pid), start in still_open.items()})
        deferred.add(self.conn, self.keys, waiting)
        votes.want(self.conn, self.keys, {event: upcoming[event] for event in agreeing if event in upcoming})
        self._watch_synced = now

    def _check_digest(self) -> None:
        """Once a minute: the daily digest, when one is due and not made yet (processor/digest.py has the rules).

        The day's row in `digests` and the alert are one transaction, so two processors make it once; its job is
        enqueued afterwards, and again at the next check if Redis refused it (the notifiers' sweeper would give
        it one too)."""
        if self._digest_job is not None:
            self._enqueue_digest()
        now = self.clock()
        if now - self._digest_checked < DIGEST_CHECK_SECONDS:
            return
        day = digest.due(now, self.settings.digest_time, self.settings.tz)
        if day is not None and day != self._digest_day:
            self._make_digest(day, now)
            self._digest_day = day
        self._digest_checked = now

    def _make_digest(self, day: date, now: float) -> None:
        with self.db.read() as tx:
            if outbox.digest_made(tx, day.isoformat()):
                return
        start, end = digest.bounds(day, self.settings.tz)
        alert = digest.build(day, settlements.settled_between(self.db, start, end),
                             settlements.alerted_since(self.db, now - digest.WINDOW_SECONDS, now),
                             self.settings.scorecard_min_settled)
        if alert is None:
            log.info("digest %s not sent: no tip settled that day and none alerted in the last %d days", day,
                     digest.WINDOW_DAYS)
            return
        with self.db.tx() as tx:
            alert_id = outbox.insert_digest(tx, alert, webhook=MAIN_WEBHOOK, created_at=now)
        if alert_id is None:
            return  # another processor made it meanwhile
        log.info("digest %s queued as alert %d: %d tips settled that day, %d predictors' records over %d days",
                 day, alert_id, len(alert.settled), len(alert.predictors), digest.WINDOW_DAYS)
        self._digest_job = AlertJob(alert_id, describe(alert), self.keys.drain(MAIN_WEBHOOK))
        self._enqueue_digest()

    def _enqueue_digest(self) -> None:
        assert self._digest_job is not None
        enqueue_alert(self.queue, self._digest_job.alert_id, retry_intervals=self.settings.notifier_retry_intervals,
                      description=self._digest_job.description, drain=self._digest_job.drain)
        self._digest_job = None

    @property
    def heartbeat_name(self) -> str:
        return heartbeat_name(self.name)

    def _gone(self, consumer: str) -> bool:
        """Whether another consumer of the group is gone: its processor's heartbeat says so, wherever it ran."""
        return heartbeat.dead(self.conn, self.keys, heartbeat_name(consumer), self.timing)

    def _beat_info(self) -> dict:
        return {"handled": self.handled, **self.consumer.lag()}

    def beat(self) -> None:
        heartbeat.beat(self.conn, self.keys, self.heartbeat_name, timeout=self.timing.timeout, mode=self.mode,
                       **self._beat_info())

    def run(self, burst: bool) -> int:
        """Handle entries until stopped (or, in a burst, until none is pending); 1 when a burst gives up."""
        self.mode = heartbeat.BURST if burst else None
        # Beaten from a thread of its own, from before the first read (a consumer without a heartbeat is gone).
        beating = heartbeat.Beater(self.conn, self.keys, self.heartbeat_name, self.timing, info=self._beat_info,
                                   mode=self.mode).start()
        try:
            return self._run(burst)
        finally:
            beating.stop(clear_it=False)  # the last beat stays for status until the caller clears it

    def _run(self, burst: bool) -> int:
        while not self.stop.is_set():
            try:
                for attempt in until_available(SERVICE_ERRORS, stopping=self.stop, on_retry=self._retrying,
                                               most=MAX_RETRY_PAUSE, attempts=BURST_ATTEMPTS if burst else None):
                    with attempt:
                        handled = self._round(burst)
                self._answered()
            except SERVICE_ERRORS as error:
                if self.stop.is_set():
                    log.error("%s; stopping", _unavailable(error))
                    break
                log.error("%s; giving up this burst; unprocessed entries stay pending", _unavailable(error))
                return 1
            if burst and handled == 0:
                return 0
        log.info("stopped after %d entries; unacknowledged entries stay pending", self.handled)
        return 0

    def _round(self, burst: bool) -> int:
        if self.stop.is_set():  # woken from a retry wait by a stop: leave without reading more
            return 0
        if not self._group_ready:
            self.consumer.ensure_group()
            self._group_ready = True
        return self.step(None if burst else BLOCK_MS)

    def _retrying(self, error: BaseException, seconds: float) -> None:
        self._outages[isinstance(error, REDIS_ERRORS)].failed(error)

    def _answered(self) -> None:
        for outage in self._outages.values():
            outage.answered()


def _unavailable(error: BaseException) -> str:
    if isinstance(error, REDIS_ERRORS):
        return f"Redis unavailable ({refusal_name(error)}: {first_line(error, 200)})"
    return f"database unavailable ({first_line(error, 200)})"


def run(settings: Settings, burst: bool = False) -> int:
    setup_logging(settings, "processor")
    db = Database(settings.database_url)
    processor = Processor(settings, connect(settings), db)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the entry in hand", signum)
        processor.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        db.migrate()
    except TRANSIENT_ERRORS as error:
        log.error("database unavailable: %s", first_line(error, 200))
        return 1
    log.info("processing %s as %s", processor.keys.fetched, processor.name)
    try:
        return processor.run(burst)
    finally:
        db.close()
        try:
            heartbeat.clear(processor.conn, processor.keys, processor.heartbeat_name)  # gone from now on
            processor.consumer.leave()  # when nothing of it is pending; otherwise a live processor takes it
        except redis.RedisError:
            pass  # its heartbeat times out and a live processor removes it
