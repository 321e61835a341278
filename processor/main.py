"""`sofamon process`: read the fetched stream, decide what to alert, enqueue the alerts."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import redis
from pydantic import ValidationError

from processor.consumer import StreamConsumer
from processor.dedup import upcoming_events
from processor.handle import BadRecord, Handler, Outcome, Rules
from shared import heartbeat
from shared.jobs import alerts_queue, enqueue_alert
from shared.keys import PROCESSOR_GROUP, Keys
from shared.logs import error_line, first_line, setup_logging
from shared.models import FetchRecord
from shared.redisconn import REDIS_ERRORS, connect
from shared.settings import Settings
from shared.storage import TRANSIENT_ERRORS, Database

log = logging.getLogger("processor")

BATCH = 50
BLOCK_MS = 2000
WATCH_SYNC_SECONDS = 60
MAX_RETRY_PAUSE = 30.0


def consumer_name() -> str:
    """Stable across restarts under supervisord, so a restarted processor takes up its own pending entries."""
    return os.environ.get("SUPERVISOR_PROCESS_NAME") or f"processor-{socket.gethostname()}"


class Processor:
    def __init__(self, settings: Settings, conn: redis.Redis, db: Database, name: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.conn = conn
        self.db = db
        self.keys = Keys.of(settings)
        self.name = name or consumer_name()
        self.consumer = StreamConsumer(conn, self.keys.fetched, PROCESSOR_GROUP, self.name)
        self.handler = Handler(db, Rules.of(settings), clock)
        self.queue = alerts_queue(conn)
        self.stop = threading.Event()
        self.handled = 0
        self._watch_synced = 0.0

    def step(self, block_ms: int | None) -> int:
        """Handle one batch; returns how many entries were handled (0: nothing pending)."""
        self._sync_watch()
        entries = self.consumer.read(BATCH, block_ms)
        for entry_id, fields in entries:
            if self.stop.is_set():
                break
            self.handle_entry(entry_id, fields)
        return len(entries)

    def handle_entry(self, entry_id: str, fields: dict) -> None:
        try:
            record = FetchRecord.from_fields(fields)
            outcome = self.handler.handle(record)
        except (BadRecord, ValidationError) as error:
            self._dead_letter(entry_id, fields, first_line(error))
            return
        except (*REDIS_ERRORS, *TRANSIENT_ERRORS):
            raise  # the services are away: the entry stays pending and is tried again
        except Exception as error:  # noqa: BLE001 - one odd entry must not stop every alert behind it
            self._dead_letter(entry_id, fields, error_line(error, 250))
            return
        self._apply(outcome)
        self.consumer.ack(entry_id)
        self.handled += 1
        for line in outcome.summaries:
            log.info("alert %s (entry %s)", line, entry_id)

    def _dead_letter(self, entry_id: str, fields: dict, reason: str) -> None:
        log.warning("entry %s is unusable, moved to dead letters: %s", entry_id, reason)
        self.consumer.dead_letter(self.keys.dead_letters, entry_id, fields, reason)

    def _apply(self, outcome: Outcome) -> None:
        """Redis side of a committed record: watch its events, enqueue its alerts."""
        if outcome.watch:
            self.conn.zadd(self.keys.watched_events, {str(e): s for e, s in outcome.watch.items()})
        for alert_id in outcome.alert_ids:
            enqueue_alert(self.queue, alert_id, retry_intervals=self.settings.notifier_retry_intervals)

    def _sync_watch(self) -> None:
        """Keep the watched events complete even if a ZADD was lost between commit and crash."""
        now = time.time()
        if now - self._watch_synced < WATCH_SYNC_SECONDS:
            return
        with self.db.tx() as tx:
            upcoming = upcoming_events(tx, now)
        if upcoming:
            self.conn.zadd(self.keys.watched_events, {str(e): s for e, s in upcoming.items()})
        self._watch_synced = now

    @property
    def heartbeat_name(self) -> str:
        return f"processor:{self.name}"

    def beat(self) -> None:
        heartbeat.beat(self.conn, self.keys, self.heartbeat_name, handled=self.handled, **self.consumer.lag())

    def run(self, burst: bool) -> int:
        pause = 1.0
        last_beat = 0.0
        started = False
        while not self.stop.is_set():
            try:
                if not started:
                    self.consumer.ensure_group()
                    started = True
                handled = self.step(None if burst else BLOCK_MS)
                if time.time() - last_beat > 15:
                    self.beat()
                    last_beat = time.time()
                pause = 1.0
                if burst and handled == 0:
                    return 0
            except REDIS_ERRORS as error:
                log.error("Redis unavailable (%s); retrying in %.0f s", type(error).__name__, pause)
            except TRANSIENT_ERRORS as error:
                log.error("database unavailable (%s); retrying in %.0f s", first_line(error, 200), pause)
            else:
                continue
            if burst and pause >= MAX_RETRY_PAUSE:
                log.error("giving up this burst; unprocessed entries stay pending")
                return 1
            self.stop.wait(pause)
            pause = min(pause * 2, MAX_RETRY_PAUSE)
        log.info("stopped after %d entries; unacknowledged entries stay pending", self.handled)
        return 0


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
            heartbeat.clear(processor.conn, processor.keys, processor.heartbeat_name)
        except REDIS_ERRORS:
            pass
